use super::super::csv::MAX_COLUMNS;
use super::*;
use crate::intake::event::{parse_event, Change};

const T10: &str = "2026-11-27T10:00:00Z";
const MS10: UnixMillis = 1_795_773_600_000;

/// Reads `file` fed in `chunks` (split at these offsets); a refusal must come before any record.
fn read_split(format: Format, file: &[u8], cuts: &[usize]) -> Result<Vec<Record>, FileRefused> {
    let mut reader = Reader::new(format);
    let mut records = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([file.len()].iter()) {
        match reader.feed(&file[from..cut]) {
            Ok(more) => records.extend(more),
            Err(refused) => {
                assert!(records.is_empty(), "a refusal after rows were yielded: {records:?}");
                assert_eq!(reader.feed(b"more").unwrap_err(), refused, "refused for good");
                return Err(refused);
            }
        }
        from = cut;
    }
    match reader.finish() {
        Ok(more) => records.extend(more),
        Err(refused) => {
            assert!(records.is_empty(), "a refusal after rows were yielded: {records:?}");
            return Err(refused);
        }
    }
    Ok(records)
}

fn read(format: Format, file: &[u8]) -> Result<Vec<Record>, FileRefused> {
    read_split(format, file, &[])
}

/// Reads `file` split at every offset, and byte by byte: always what it reads whole.
fn same_at_every_split(format: Format, file: &[u8]) -> Result<Vec<Record>, FileRefused> {
    let whole = read(format, file);
    for cut in 0..=file.len() {
        assert_eq!(read_split(format, file, &[cut]), whole, "split at {cut}");
    }
    let every: Vec<usize> = (0..=file.len()).collect();
    assert_eq!(read_split(format, file, &every), whole, "byte by byte");
    whole
}

fn bad(line: u64, reason: &str, raw: &str) -> Record {
    Record::Bad { line, reason: reason.into(), raw: raw.into() }
}

/// The row's line, contact and `data`, checked to be a body `parse_event` accepts.
fn row_data(record: &Record) -> (u64, String, serde_json::Value) {
    let Record::Row { line, contact, order_at, event_type, body } = record else { panic!("{record:?}") };
    let event = parse_event(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!((&event.contact_id, event.updated_at, event.kind), (contact, *order_at, *event_type));
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    (*line, contact.clone(), value["data"].clone())
}

fn refused(result: Result<Vec<Record>, FileRefused>) -> String {
    match result {
        Err(FileRefused(reason)) => reason,
        Ok(records) => panic!("not refused: {records:?}"),
    }
}

#[test]
fn formats_come_from_a_query_value_or_a_content_type() {
    assert_eq!(Format::from_query("CSV"), Some(Format::Csv));
    assert_eq!(Format::from_query("ndjson"), Some(Format::Ndjson));
    assert_eq!(Format::from_query("jsonl"), Some(Format::Ndjson));
    assert_eq!(Format::from_query("xlsx"), None);
    assert_eq!(Format::from_content_type("text/csv; charset=utf-8"), Some(Format::Csv));
    assert_eq!(Format::from_content_type("Application/X-NDJSON"), Some(Format::Ndjson));
    assert_eq!(Format::from_content_type("application/jsonl"), Some(Format::Ndjson));
    assert_eq!(Format::from_content_type("application/json"), None);
    assert_eq!(serde_json::to_value(Format::Ndjson).unwrap(), "ndjson");
    assert_eq!(Format::Csv.as_str(), "csv");
}

#[test]
fn csv_rows_become_contact_updates_with_their_non_empty_cells() {
    let file = format!("id,updated_at,email,plan\nsm_1,{T10},ada@example.com,\nsm_2,{T10},,pro\n");
    let records = same_at_every_split(Format::Csv, file.as_bytes()).unwrap();
    assert_eq!(records.len(), 2);
    let (line, contact, data) = row_data(&records[0]);
    assert_eq!((line, contact.as_str()), (2, "sm_1"));
    assert_eq!(data, serde_json::json!({"id": "sm_1", "updated_at": T10, "email": "ada@example.com"}));
    let (line, _, data) = row_data(&records[1]);
    assert_eq!((line, data["plan"].as_str(), data.get("email")), (3, Some("pro"), None));
    let Record::Row { order_at, event_type, body, .. } = &records[0] else { panic!() };
    assert_eq!((*order_at, *event_type), (MS10, EventType::ContactUpdated));
    let Change::ContactUpsert(contact) = parse_event(body.as_bytes()).unwrap().change else { panic!() };
    assert_eq!(contact.fields["email"], "ada@example.com");
}

#[test]
fn csv_quoting_crlf_bom_and_blank_lines() {
    let file = format!(
        "\u{FEFF}id,updated_at,note\r\nsm_1,{T10},\"two\r\nlines, \"\"quoted\"\"\"\r\n\r\nsm_2,{T10},\"a\nb\nc\"\r\nsm_3,{T10},last"
    );
    let records = same_at_every_split(Format::Csv, file.as_bytes()).unwrap();
    let rows: Vec<_> = records.iter().map(row_data).collect();
    assert_eq!(rows[0].0, 2);
    assert_eq!(rows[0].2["note"], "two\r\nlines, \"quoted\"");
    assert_eq!((rows[1].0, rows[1].2["note"].as_str()), (5, Some("a\nb\nc")));
    assert_eq!((rows[2].0, rows[2].1.as_str(), rows[2].2["note"].as_str()), (8, "sm_3", Some("last")));
}

#[test]
fn bad_csv_rows_are_reported_with_their_line_and_the_rest_read() {
    let file = format!(
        "id,updated_at,email\nsm_1,{T10}\n,{T10},x@y.z\nsm/2,{T10},\nsm_3,yesterday,\nsm_4,{T10},\"ok\"\nsm_5,{T10},a,b\nsm_6,{T10},\n"
    );
    let records = same_at_every_split(Format::Csv, file.as_bytes()).unwrap();
    assert_eq!(
        records[..4],
        [
            bad(2, "the row has 2 cells, the header 3", &format!("sm_1,{T10}")),
            bad(3, "the row has no `id`", &format!(",{T10},x@y.z")),
            bad(4, "`id` must be 1-128 characters of A-Z a-z 0-9 . _ -", &format!("sm/2,{T10},")),
            bad(5, "`updated_at` `yesterday` is not an RFC 3339 date-time", "sm_3,yesterday,"),
        ]
    );
    assert_eq!(row_data(&records[4]).0, 6);
    assert_eq!(records[5], bad(7, "the row has more cells than the header's 3", &format!("sm_5,{T10},a,b")));
    assert_eq!(row_data(&records[6]).0, 8);
}

#[test]
fn a_row_that_is_not_utf8_past_the_files_start_is_one_bad_row() {
    let filler: String = (0..200).map(|n| format!("sm_{n},{T10},x\n")).collect();
    let mut file = format!("id,updated_at,name\n{filler}").into_bytes();
    assert!(file.len() > SNIFF_BYTES);
    file.extend_from_slice(format!("sm_x,{T10},Jos").as_bytes());
    file.push(0xE9);
    file.extend_from_slice(format!("\nsm_y,{T10},ok\n").as_bytes());
    let records = read(Format::Csv, &file).unwrap();
    assert_eq!(records.len(), 202);
    assert_eq!(records[200], bad(202, "the row is not UTF-8", &format!("sm_x,{T10},Jos\u{FFFD}")));
    assert_eq!(row_data(&records[201]).0, 203);
}

#[test]
fn a_csv_file_that_is_not_what_it_claims_is_refused_whole() {
    let rows = format!("sm_1,{T10}\n");
    let table = [
        (format!("email,updated_at\n{rows}"), "no `id` column"),
        (format!("id,email\n{rows}"), "no `updated_at` column"),
        (format!("id,updated_at,id\n{rows}"), "names `id` twice (columns 1 and 3)"),
        (format!("id,updated_at,\n{rows}"), "column 3 of the CSV header has no name"),
        (format!(",,\n{rows}"), "the CSV header is empty"),
        ("".into(), "the file is empty"),
        ("\u{FEFF}\r\n\r\n".into(), "the file is empty"),
        ("{\"type\":\"contact.updated\"}\n".into(), "no `id` column"),
    ];
    for (file, expected) in table {
        let reason = refused(same_at_every_split(Format::Csv, file.as_bytes()));
        assert!(reason.contains(expected), "{file:?}: {reason}");
    }
}

#[test]
fn a_file_whose_start_is_not_utf8_is_refused_whole() {
    let latin1 = b"id,updated_at,name\nsm_1,2026-11-27T10:00:00Z,Jos\xE9\n";
    for format in [Format::Csv, Format::Ndjson] {
        let reason = refused(same_at_every_split(format, latin1));
        assert!(reason.contains("not UTF-8 (byte 49 is not)"), "{reason}");
    }
    let utf16 = b"\xFF\xFEi\0d\0";
    assert!(refused(read(Format::Csv, utf16)).contains("UTF-16"));
    // A character cut by the end of the first chunk is no refusal.
    let name = "é".repeat(SNIFF_BYTES);
    let file = format!("id,updated_at,name\nsm_1,{T10},{name}\n");
    assert_eq!(read(Format::Csv, file.as_bytes()).unwrap().len(), 1);
}

#[test]
fn ndjson_lines_are_webhook_bodies_of_any_type() {
    let file = format!(
        concat!(
            "{{\"type\":\"contact.created\",\"timestamp\":\"{t}\",\"data\":{{\"id\":\"sm_1\",\"updated_at\":\"{t}\"}}}}\r\n",
            "\n",
            "   \n",
            "{{\"type\":\"note.created\",\"data\":{{\"id\":\"n1\",\"contact_id\":\"sm_1\",\"body\":\"hi\",\"updated_at\":\"{t}\"}}}}\n",
            "{{\"type\":\"tag.added\",\"data\":{{\"contact_id\":\"sm_2\",\"tag\":\"vip\",\"updated_at\":\"{t}\"}}}}",
        ),
        t = T10
    );
    let records = same_at_every_split(Format::Ndjson, file.as_bytes()).unwrap();
    let seen: Vec<_> = records
        .iter()
        .map(|record| {
            let (line, contact, _) = row_data(record);
            let Record::Row { event_type, .. } = record else { panic!() };
            (line, contact, event_type.as_str())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "sm_1".into(), "contact.created"),
            (4, "sm_1".into(), "note.created"),
            (5, "sm_2".into(), "tag.added")
        ]
    );
}

#[test]
fn bad_ndjson_lines_carry_the_parse_error() {
    let good = format!(r#"{{"type":"contact.updated","data":{{"id":"sm_1","updated_at":"{T10}"}}}}"#);
    let file = format!(
        "{good}\nnot json\n[1]\n{{\"type\":\"contact.exploded\",\"data\":{{\"id\":\"a\",\"updated_at\":\"{T10}\"}}}}\n{{\"type\":\"contact.updated\",\"data\":{{\"id\":\"a\"}}}}\n{{\"type\":\"contact.updated\",\"data\":{{\"id\":\"a\",\"updated_at\":\"soon\"}}}}\n{good}\n"
    );
    let records = same_at_every_split(Format::Ndjson, file.as_bytes()).unwrap();
    let reasons: Vec<_> = records
        .iter()
        .map(|record| match record {
            Record::Bad { line, reason, .. } => (*line, reason.clone()),
            Record::Row { line, .. } => (*line, "row".into()),
        })
        .collect();
    assert_eq!(reasons[0], (1, "row".into()));
    assert!(reasons[1].1.starts_with("the line is not JSON: expected ident"), "{:?}", reasons[1]);
    assert_eq!(reasons[2], (3, "the line is not a JSON object".into()));
    assert_eq!(reasons[3], (4, "unknown event type `contact.exploded`".into()));
    assert_eq!(reasons[4], (5, "`data.updated_at` is required (an RFC 3339 date-time string)".into()));
    assert_eq!(reasons[5], (6, "`data.updated_at` `soon` is not an RFC 3339 date-time".into()));
    assert_eq!(reasons[6], (7, "row".into()));
    assert_eq!(records[2], bad(3, "the line is not a JSON object", "[1]"));
}

#[test]
fn an_ndjson_file_whose_first_line_is_not_an_object_is_refused() {
    let rest =
        format!("\n{{\"type\":\"contact.updated\",\"data\":{{\"id\":\"a\",\"updated_at\":\"{T10}\"}}}}\n");
    for (first, expected) in [
        ("id,updated_at", "this is not NDJSON: the line is not JSON"),
        ("[{}]", "this is not NDJSON: the line is not a JSON object"),
        ("\n\r\n\"text\"", "this is not NDJSON: the line is not a JSON object"),
    ] {
        let file = format!("{first}{rest}");
        let reason = refused(same_at_every_split(Format::Ndjson, file.as_bytes()));
        assert!(reason.starts_with(expected), "{first:?}: {reason}");
    }
    assert!(refused(read(Format::Ndjson, b"\n \r\n")).contains("the file is empty"));
    // An object that is no event is one bad line, not a refusal.
    let records = read(Format::Ndjson, format!("{{}}{rest}").as_bytes()).unwrap();
    assert!(matches!(&records[0], Record::Bad { line: 1, .. }), "{records:?}");
    assert!(matches!(&records[1], Record::Row { line: 2, .. }), "{records:?}");
}

#[test]
fn a_record_over_64_kb_is_bad_and_skipped_to_its_end() {
    let long = "x".repeat(MAX_RECORD_BYTES + 10);
    let csv = format!("id,updated_at,note\nsm_1,{T10},\"{long}\nmore\"\nsm_2,{T10},short\n");
    let ndjson = format!(
        "{{\"type\":\"contact.updated\",\"data\":{{\"id\":\"a\",\"updated_at\":\"{T10}\",\"x\":\"{long}\"}}}}\n{{\"type\":\"contact.updated\",\"data\":{{\"id\":\"b\",\"updated_at\":\"{T10}\"}}}}\n"
    );
    for (format, file, reason) in [
        (Format::Csv, csv, "the row is longer than 64 KB"),
        (Format::Ndjson, ndjson, "the line is longer than 64 KB"),
    ] {
        let bytes = file.as_bytes();
        let whole = read(format, bytes).unwrap();
        for cut in [1, 100, SNIFF_BYTES, MAX_RECORD_BYTES, MAX_RECORD_BYTES + 40, bytes.len() - 3] {
            assert_eq!(
                read_split(format, bytes, &[cut.min(bytes.len()), (cut + 7).min(bytes.len())]).as_ref(),
                Ok(&whole),
                "{format:?} split at {cut}"
            );
        }
        let chunks: Vec<usize> = (0..bytes.len()).step_by(997).collect();
        assert_eq!(read_split(format, bytes, &chunks).as_ref(), Ok(&whole));
        let Record::Bad { line, reason: why, raw } = &whole[0] else { panic!("{:?}", whole[0]) };
        assert_eq!(
            (line, why.as_str(), raw.len()),
            (&(if format == Format::Csv { 2 } else { 1 }), reason, MAX_RAW_BYTES)
        );
        let next = if format == Format::Csv { 4 } else { 2 };
        assert_eq!(row_data(&whole[1]).0, next);
    }
    let header = format!("id,updated_at,{}\nsm_1,{T10}\n", "c,".repeat(MAX_COLUMNS));
    assert!(refused(read(Format::Csv, header.as_bytes())).contains("names more than 1000 columns"));
}

#[cfg(not(target_arch = "wasm32"))]
proptest::proptest! {
    #[test]
    fn any_chunking_reads_the_same(cuts in proptest::collection::vec(0usize..400, 0..12)) {
        let csv = format!("\u{FEFF}id,updated_at,note\r\nsm_1,{T10},\"a\r\nb\"\r\nsm_2,bad,\r\n,{T10},\nsm_3,{T10},\"\"\"\"\n");
        let ndjson = format!("{{\"type\":\"contact.updated\",\"data\":{{\"id\":\"a\",\"updated_at\":\"{T10}\"}}}}\r\nnope\n\n{{}}\n");
        for (format, file) in [(Format::Csv, csv), (Format::Ndjson, ndjson)] {
            let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut.min(file.len())).collect();
            cuts.sort_unstable();
            proptest::prop_assert_eq!(read_split(format, file.as_bytes(), &cuts), read(format, file.as_bytes()));
        }
    }

    #[test]
    fn any_bytes_read_or_are_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        for format in [Format::Csv, Format::Ndjson] {
            if let Ok(records) = read(format, &bytes) {
                for record in records {
                    if let Record::Row { body, .. } = record {
                        proptest::prop_assert!(parse_event(body.as_bytes()).is_ok());
                    }
                }
            }
        }
    }
}
