//! The location's custom fields: their definitions as `GET /locations/{locationId}/customFields
//! ?model=contact` lists them (id, key, name, `dataType`, options), how a mapping names one (by id
//! or by key, resolved per location), and the conversion of a value to the field's type before any
//! call, so that a value the API would silently drop or refuse is a reason on the event instead.
//! Planning ([`crate::sync::mapping`]) converts with these; the location's writer fetches and keeps
//! the list.

use serde_json::{json, Map, Value};

use crate::case;
use crate::contacts_api::{api_message, ApiId, ApiRequest, ApiResponse};
use crate::sync::phone::to_e164;
use crate::timestamp::{format_date, parse_rfc3339, UnixMillis};

/// A copy of the list younger than this is not read again for a field it lacks or a value it
/// refuses: a field the location really lacks parks its events at once, rather than reading the
/// list for each.
pub const REREAD_AFTER_MS: UnixMillis = 60_000;
/// A copy this old is read again before it is used, whatever the event.
pub const MAX_AGE_MS: UnixMillis = 24 * 3_600_000;

/// The OAuth scope that lists a location's custom fields.
pub const SCOPE: &str = "locations/customFields.readonly";
/// The OAuth scope that lists a location's workflows (the console's picker).
pub const WORKFLOWS_SCOPE: &str = "workflows.readonly";
/// The OAuth scope that lists a location's campaigns (the console's picker).
pub const CAMPAIGNS_SCOPE: &str = "campaigns.readonly";

/// How a mapping names a custom field: by the id the location gave it, or by its key
/// (`contact.plan`), the same in every location where a field of that name was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    Id(String),
    Key(String),
}

impl FieldRef {
    /// `contact.<key>` (letters, digits, `_`) is a key; letters, digits, `_` and `-` an id.
    pub fn parse(text: &str) -> Result<FieldRef, String> {
        let word = |s: &str, extra: u8| {
            !s.is_empty()
                && s.len() <= 100
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == extra)
        };
        match text.strip_prefix("contact.") {
            Some(key) if word(key, b'_') => Ok(FieldRef::Key(text.to_owned())),
            None if word(text, b'-') && text.len() <= 64 => Ok(FieldRef::Id(text.to_owned())),
            _ => Err(format!("`{text}` is not a custom field id or key (`contact.<key>`)")),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            FieldRef::Id(text) | FieldRef::Key(text) => text,
        }
    }
}

/// A custom field's `dataType`. The spec does not enumerate them; these are the ones GoHighLevel's
/// clients use. Any other is converted as text, and the field list says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    Text,
    LargeText,
    Numerical,
    Monetary,
    Phone,
    Date,
    Checkbox,
    MultipleOptions,
    SingleOptions,
    Radio,
    Other(String),
}

const KNOWN_TYPES: [(&str, DataType); 10] = [
    ("TEXT", DataType::Text),
    ("LARGE_TEXT", DataType::LargeText),
    ("NUMERICAL", DataType::Numerical),
    ("MONETORY", DataType::Monetary),
    ("PHONE", DataType::Phone),
    ("DATE", DataType::Date),
    ("CHECKBOX", DataType::Checkbox),
    ("MULTIPLE_OPTIONS", DataType::MultipleOptions),
    ("SINGLE_OPTIONS", DataType::SingleOptions),
    ("RADIO", DataType::Radio),
];

impl DataType {
    pub fn parse(name: &str) -> DataType {
        KNOWN_TYPES
            .iter()
            .find(|(known, _)| *known == name)
            .map_or_else(|| DataType::Other(name.to_owned()), |(_, kind)| kind.clone())
    }

    pub fn name(&self) -> &str {
        match self {
            DataType::Other(name) => name,
            known => KNOWN_TYPES.iter().find(|(_, kind)| kind == known).map_or("", |(name, _)| name),
        }
    }

    /// What a value of this type must be, for the field list and the reasons.
    fn expects(&self) -> &'static str {
        match self {
            DataType::Text | DataType::LargeText => "text",
            DataType::Numerical | DataType::Monetary => "a number",
            DataType::Phone => "a phone number (converted to E.164)",
            DataType::Date => "a date (YYYY-MM-DD or RFC 3339; sent as YYYY-MM-DD)",
            DataType::Checkbox | DataType::MultipleOptions => "a list of its options (sent as an array)",
            DataType::SingleOptions | DataType::Radio => "one of its options",
            DataType::Other(_) => "text (an unknown type: converted as text)",
        }
    }

    fn has_options(&self) -> bool {
        matches!(
            self,
            DataType::Checkbox | DataType::MultipleOptions | DataType::SingleOptions | DataType::Radio
        )
    }
}

/// One custom field as the location defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub id: String,
    pub key: String,
    pub name: String,
    pub data_type: DataType,
    /// `picklistOptions` (option types only).
    pub options: Vec<String>,
}

impl FieldDef {
    fn from_api(field: &Value) -> Option<FieldDef> {
        let text = |name| field.get(name).and_then(Value::as_str).map(str::to_owned);
        let options = field.get("picklistOptions").and_then(Value::as_array).map_or_else(Vec::new, |items| {
            items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        });
        Some(FieldDef {
            id: ApiId::parse(&text("id")?)?.as_str().to_owned(),
            key: text("fieldKey").unwrap_or_default(),
            name: text("name").unwrap_or_default(),
            data_type: DataType::parse(&text("dataType").unwrap_or_default()),
            options,
        })
    }

    /// As the console and the stored copy show it (read back by [`FieldDef::from_api`]).
    fn to_json(&self) -> Value {
        let mut field = json!({
            "id": self.id, "fieldKey": self.key, "name": self.name, "dataType": self.data_type.name(),
            "expects": self.data_type.expects(),
        });
        if self.data_type.has_options() {
            field["picklistOptions"] = json!(self.options);
        }
        field
    }

    fn is(&self, reference: &FieldRef) -> bool {
        match reference {
            FieldRef::Id(id) => self.id == *id,
            FieldRef::Key(key) => self.key == *key,
        }
    }
}

/// Why a list the location keeps (custom fields, workflows, campaigns) could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// 401 or 403 (after a token renewal): the token lacks the list's scope.
    MissingScope { scope: &'static str, detail: String },
    /// 408, 425, 429, 5xx, or no answer: reading it again later may work.
    Unavailable(String),
    /// Anything else the API refused, or an answer without the list.
    Refused(String),
}

impl ListError {
    pub fn describe(&self) -> String {
        match self {
            ListError::MissingScope { scope, detail } => {
                format!("the token was refused the list ({detail}); it needs the scope {scope}")
            }
            ListError::Unavailable(detail) | ListError::Refused(detail) => detail.clone(),
        }
    }
}

/// Whether an answer refuses the call for a scope the token lacks (401 or 403 saying so).
pub fn refuses_scope(response: &ApiResponse) -> bool {
    matches!(response.status, 401 | 403) && case::lowercase(&api_message(&response.body)).contains("scope")
}

/// A list answer's body, or why there is none (`scope`: the scope the list needs).
pub fn read_list<'a>(response: &'a ApiResponse, scope: &'static str) -> Result<&'a Value, ListError> {
    let detail = || format!("HTTP {}: {}", response.status, api_message(&response.body));
    match response.status {
        200..=299 => Ok(&response.body),
        401 | 403 => Err(ListError::MissingScope { scope, detail: detail() }),
        408 | 425 | 429 | 500..=599 => Err(ListError::Unavailable(detail())),
        _ => Err(ListError::Refused(detail())),
    }
}

/// A location's contact custom fields, as read at `read_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definitions {
    pub fields: Vec<FieldDef>,
    pub read_at: UnixMillis,
}

/// `GET /locations/{locationId}/customFields?model=contact`.
pub fn list_request(location_id: &ApiId) -> ApiRequest {
    ApiRequest::get(format!("/locations/{location_id}/customFields")).with_query([("model", "contact")])
}

impl Definitions {
    /// The list answer (`{customFields: [...]}`), or what is wrong with it. Entries without a
    /// usable id are left out; another model's fields too.
    pub fn from_answer(answer: &Value, read_at: UnixMillis) -> Result<Definitions, String> {
        let list = answer
            .get("customFields")
            .and_then(Value::as_array)
            .ok_or("the custom fields answer carried no `customFields` list")?;
        let contact =
            |field: &&Value| field.get("model").and_then(Value::as_str).is_none_or(|m| m == "contact");
        let fields = list.iter().filter(contact).filter_map(FieldDef::from_api).collect();
        Ok(Definitions { fields, read_at })
    }

    pub fn find(&self, reference: &FieldRef) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.is(reference))
    }

    /// As stored in the writer's `meta` and shown to the console: `{read_at, customFields}`.
    pub fn to_json(&self) -> Value {
        let fields: Vec<Value> = self.fields.iter().map(FieldDef::to_json).collect();
        json!({ "read_at": self.read_at, "customFields": fields })
    }

    pub fn from_json(value: &Value) -> Option<Definitions> {
        let read_at = value.get("read_at")?.as_i64()?;
        Definitions::from_answer(value, read_at).ok()
    }
}

/// What a mapping rule adds to a field's own type when converting: SightMill's values to the
/// field's (`values`), and a longest text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversion {
    /// Applied to each text value (or list item) that equals a key exactly, before any check.
    pub values: Vec<(String, String)>,
    /// Longest text, in characters (text types).
    pub max_length: Option<usize>,
}

impl Conversion {
    pub fn from_json(
        values: Option<&Map<String, Value>>,
        max_length: Option<usize>,
    ) -> Result<Conversion, String> {
        let values = values.into_iter().flatten().map(|(from, to)| match to {
            Value::String(to) => Ok((from.clone(), to.clone())),
            _ => Err(format!("`values.{from}` must be a string")),
        });
        Ok(Conversion { values: values.collect::<Result<_, _>>()?, max_length })
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.max_length.is_none()
    }

    fn map_value(&self, text: String) -> String {
        self.values.iter().find(|(from, _)| *from == text).map_or(text, |(_, to)| to.clone())
    }
}

/// `value` as `field` takes it, or why it cannot be: a null (or blank) clears the field (`""`).
pub fn convert(
    field: &FieldDef,
    value: Value,
    conversion: &Conversion,
    country_code: Option<&str>,
) -> Result<Value, String> {
    if value.is_null() || value.as_str().is_some_and(|text| text.trim().is_empty()) {
        return Ok(Value::from(""));
    }
    let scalar = |value: Value| scalar_text(value).map(|text| conversion.map_value(text));
    match &field.data_type {
        DataType::Text | DataType::LargeText | DataType::Other(_) => {
            let text = scalar(value)?;
            match conversion.max_length {
                Some(max) if text.chars().count() > max => {
                    Err(format!("is {} characters, longer than {max}", text.chars().count()))
                }
                _ => Ok(Value::String(text)),
            }
        }
        DataType::Numerical | DataType::Monetary => number(value, conversion),
        DataType::Phone => {
            let text = scalar(value)?;
            to_e164(&text, country_code.unwrap_or("")).map(Value::String).ok_or_else(|| {
                let hint = if country_code.is_none() {
                    " (no `default_country_code` for numbers without +)"
                } else {
                    ""
                };
                format!("`{text}` is not a phone number that converts to E.164{hint}")
            })
        }
        DataType::Date => date(&scalar(value)?).map(Value::String),
        DataType::SingleOptions | DataType::Radio => option(field, &scalar(value)?).map(Value::String),
        DataType::Checkbox | DataType::MultipleOptions => {
            let items = match value {
                Value::Array(items) => items,
                single => vec![single],
            };
            let options: Result<Vec<Value>, String> =
                items.into_iter().map(|item| option(field, &scalar(item)?).map(Value::String)).collect();
            options.map(Value::Array)
        }
    }
}

/// A string, number or boolean as text.
fn scalar_text(value: Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err("must be a string, number or boolean".into()),
    }
}

fn number(value: Value, conversion: &Conversion) -> Result<Value, String> {
    let text = match value {
        Value::Number(n) => return Ok(Value::Number(n)),
        Value::String(text) => conversion.map_value(text.trim().to_owned()),
        other => return Err(format!("`{other}` is not a number")),
    };
    let plain = |text: &str| {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && digits.bytes().filter(|b| *b == b'.').count() <= 1
            && !digits.starts_with('.')
            && !digits.ends_with('.')
    };
    if !plain(&text) {
        return Err(format!("`{text}` is not a number"));
    }
    // A plain decimal without leading zeros is JSON: serde_json's own number reader (already in
    // the Wasm, unlike the standard library's float parser) reads it.
    let (sign, digits) = text.split_at(usize::from(text.starts_with('-')));
    let trimmed = digits.trim_start_matches('0');
    let digits = if trimmed.is_empty() || trimmed.starts_with('.') {
        &digits[digits.len() - trimmed.len() - 1..]
    } else {
        trimmed
    };
    serde_json::from_str::<serde_json::Number>(&format!("{sign}{digits}"))
        .map(Value::Number)
        .map_err(|_| format!("`{text}` is not a number"))
}

/// `YYYY-MM-DD`, from a date or an RFC 3339 instant (its UTC date).
fn date(text: &str) -> Result<String, String> {
    let refused = || format!("`{text}` is not a date (YYYY-MM-DD or RFC 3339)");
    if text.len() == 10 {
        let at = parse_rfc3339(&format!("{text}T00:00:00Z")).ok_or_else(refused)?;
        return Ok(format_date(at));
    }
    parse_rfc3339(text).map(format_date).ok_or_else(refused)
}

/// The field's option that `text` names (the same letters in any case), in the field's spelling.
/// A field without options takes any text.
fn option(field: &FieldDef, text: &str) -> Result<String, String> {
    if field.options.is_empty() {
        return Ok(text.to_owned());
    }
    let wanted = case::lowercase(text);
    field
        .options
        .iter()
        .find(|option| case::lowercase(option) == wanted)
        .cloned()
        .ok_or_else(|| format!("`{text}` is not one of its options ({})", field.options.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(data_type: &str, options: &[&str]) -> FieldDef {
        FieldDef {
            id: "f1".into(),
            key: "contact.f".into(),
            name: "F".into(),
            data_type: DataType::parse(data_type),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn run(data_type: &str, options: &[&str], value: Value) -> Result<Value, String> {
        convert(&def(data_type, options), value, &Conversion::default(), Some("1"))
    }

    /// A table row: the type, its options, the value, and the value sent or a part of the reason.
    type Row<'a> = (&'a str, &'a [&'a str], Value, Result<Value, &'a str>);

    #[test]
    fn each_data_type_converts_or_refuses_with_a_reason() {
        let plans = ["Basic", "Pro"];
        let table: Vec<Row> = vec![
            ("TEXT", &[], json!(" hi "), Ok(json!("hi"))),
            ("TEXT", &[], json!(42), Ok(json!("42"))),
            ("TEXT", &[], json!({"a": 1}), Err("must be a string, number or boolean")),
            ("LARGE_TEXT", &[], json!(true), Ok(json!("true"))),
            ("NUMERICAL", &[], json!("12"), Ok(json!(12))),
            ("NUMERICAL", &[], json!(" -3.5 "), Ok(json!(-3.5))),
            ("NUMERICAL", &[], json!(7), Ok(json!(7))),
            ("NUMERICAL", &[], json!("007"), Ok(json!(7))),
            ("NUMERICAL", &[], json!("-0.50"), Ok(json!(-0.5))),
            ("NUMERICAL", &[], json!("0"), Ok(json!(0))),
            ("NUMERICAL", &[], json!("12 apples"), Err("`12 apples` is not a number")),
            ("NUMERICAL", &[], json!("1e9"), Err("is not a number")),
            ("NUMERICAL", &[], json!(true), Err("`true` is not a number")),
            ("MONETORY", &[], json!("19.99"), Ok(json!(19.99))),
            ("MONETORY", &[], json!("$5"), Err("is not a number")),
            ("PHONE", &[], json!("(555) 010-0199"), Ok(json!("+15550100199"))),
            ("PHONE", &[], json!("call me"), Err("not a phone number")),
            ("DATE", &[], json!("2026-02-28"), Ok(json!("2026-02-28"))),
            ("DATE", &[], json!("2026-03-01T01:30:00+02:00"), Ok(json!("2026-02-28"))),
            ("DATE", &[], json!("2026-02-30"), Err("is not a date")),
            ("DATE", &[], json!("tomorrow"), Err("is not a date")),
            ("SINGLE_OPTIONS", &plans, json!("pro"), Ok(json!("Pro"))),
            ("SINGLE_OPTIONS", &plans, json!("Gold"), Err("`Gold` is not one of its options (Basic, Pro)")),
            ("RADIO", &plans, json!("Basic"), Ok(json!("Basic"))),
            ("MULTIPLE_OPTIONS", &plans, json!(["basic", "Pro"]), Ok(json!(["Basic", "Pro"]))),
            ("MULTIPLE_OPTIONS", &plans, json!("Pro"), Ok(json!(["Pro"]))),
            ("MULTIPLE_OPTIONS", &plans, json!(["Pro", "Max"]), Err("`Max` is not one of its options")),
            ("CHECKBOX", &["Yes"], json!(["yes"]), Ok(json!(["Yes"]))),
            ("CHECKBOX", &[], json!(["anything"]), Ok(json!(["anything"]))),
            ("FILE_UPLOAD", &[], json!("x.pdf"), Ok(json!("x.pdf"))),
            ("NUMERICAL", &[], Value::Null, Ok(json!(""))),
            ("SINGLE_OPTIONS", &plans, json!("  "), Ok(json!(""))),
        ];
        for (data_type, options, value, expected) in table {
            let got = run(data_type, options, value.clone());
            match expected {
                Ok(want) => assert_eq!(got, Ok(want), "{data_type} {value}"),
                Err(reason) => {
                    let error = got.expect_err(&format!("{data_type} {value} should be refused"));
                    assert!(error.contains(reason), "{data_type} {value}: {error}");
                }
            }
        }
    }

    #[test]
    fn a_value_map_and_a_length_apply_before_the_checks() {
        let conversion = Conversion {
            values: vec![("gold".into(), "Pro".into()), ("2".into(), "20".into())],
            max_length: Some(3),
        };
        let plan = def("SINGLE_OPTIONS", &["Basic", "Pro"]);
        assert_eq!(convert(&plan, json!("gold"), &conversion, None), Ok(json!("Pro")));
        assert_eq!(convert(&def("NUMERICAL", &[]), json!("2"), &conversion, None), Ok(json!(20)));
        let long = convert(&def("TEXT", &[]), json!("abcd"), &conversion, None).unwrap_err();
        assert_eq!(long, "is 4 characters, longer than 3");
        let phone = convert(&def("PHONE", &[]), json!("555 0100"), &conversion, None).unwrap_err();
        assert!(phone.contains("no `default_country_code`"), "{phone}");
    }

    #[test]
    fn references_are_ids_or_keys() {
        assert_eq!(FieldRef::parse("8kXbQnL2Ya9TfJ"), Ok(FieldRef::Id("8kXbQnL2Ya9TfJ".into())));
        assert_eq!(FieldRef::parse("contact.plan_tier"), Ok(FieldRef::Key("contact.plan_tier".into())));
        for bad in ["", "has space", "../x", "contact.", "contact.a-b", "opportunity.x", &"x".repeat(65)] {
            assert!(FieldRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_list_answer_is_read_and_stored_alike() {
        let answer = json!({"customFields": [
            {"id": "f1", "name": "Plan", "fieldKey": "contact.plan", "dataType": "SINGLE_OPTIONS",
             "picklistOptions": ["Basic", "Pro"], "model": "contact"},
            {"id": "f2", "name": "Score", "fieldKey": "contact.score", "dataType": "NUMERICAL"},
            {"id": "o1", "name": "Deal", "fieldKey": "opportunity.deal", "dataType": "TEXT", "model": "opportunity"},
            {"id": "../bad", "name": "Bad", "fieldKey": "contact.bad", "dataType": "TEXT"},
        ]});
        let definitions = Definitions::from_answer(&answer, 5).unwrap();
        assert_eq!(definitions.fields.len(), 2);
        let plan = definitions.find(&FieldRef::Key("contact.plan".into())).unwrap();
        assert_eq!((plan.id.as_str(), &plan.data_type), ("f1", &DataType::SingleOptions));
        assert_eq!(definitions.find(&FieldRef::Id("f2".into())).unwrap().key, "contact.score");
        assert_eq!(Definitions::from_json(&definitions.to_json()), Some(definitions));
        assert!(Definitions::from_answer(&json!({"fields": []}), 0).is_err());
        let listed = list_request(&ApiId::parse("loc-1").unwrap());
        assert_eq!(listed.path, "/locations/loc-1/customFields?model=contact");
    }

    #[test]
    fn a_list_refusal_names_the_scope() {
        let answer = |status, body| ApiResponse { status, body, retry_after_secs: None };
        let listed = answer(200, json!({"customFields": []}));
        assert_eq!(read_list(&listed, SCOPE), Ok(&json!({"customFields": []})));
        let refused = answer(401, json!({"message": "The token is not authorized for this scope."}));
        let error = read_list(&refused, SCOPE).unwrap_err();
        assert!(matches!(error, ListError::MissingScope { scope: SCOPE, .. }));
        assert!(refuses_scope(&refused));
        assert!(!refuses_scope(&answer(401, json!({"message": "Invalid JWT"}))));
        assert!(
            error.describe().ends_with("it needs the scope locations/customFields.readonly"),
            "{}",
            error.describe()
        );
        assert!(matches!(read_list(&answer(503, Value::Null), SCOPE), Err(ListError::Unavailable(_))));
        assert!(matches!(read_list(&answer(400, Value::Null), SCOPE), Err(ListError::Refused(_))));
    }

    #[test]
    fn dates_fall_on_the_right_day() {
        for (at, date) in [(0, "1970-01-01"), (951_782_400_000, "2000-02-29"), (-86_400_000, "1969-12-31")] {
            assert_eq!(format_date(at), date);
        }
    }
}
