//! Finding the contact a create in doubt made (planning, [`crate::sync::plan`]): what a contact
//! create sent that recognises its contact, the one `POST /contacts/search` a doubt costs, and
//! which contact in the answer that create made.
//!
//! The search, not `GET /contacts/search/duplicate`: the duplicate lookup answers a single
//! contact chosen by the location's duplicate setting, so on a location that allows duplicates it
//! cannot tell the contact the create made from an older one with the same email, nor say that
//! two could be it. The search filters by the most exact key the create sent (the SightMill id's
//! custom field, else email, else phone, else first or last name) and by `dateAdded` no earlier
//! than the send minus the clock skew, newest first; every candidate is then checked against all
//! that the create sent. None: the create was not applied. One: it is adopted. More: the event is
//! parked naming two of them, rather than guessing.

use serde_json::{json, Map, Value};

use crate::contacts_api::{ApiId, ApiRequest};
use crate::sync::records::{CreateInDoubt, Sent};
use crate::timestamp::{format_rfc3339, parse_rfc3339, UnixMillis};

/// How far the API's clock may be behind the worker's: a record added earlier than this before
/// an unanswered create was sent is not the one it made.
pub const CLOCK_SKEW_MS: UnixMillis = 10 * 60 * 1_000;

/// Candidates one search reads: more than one is already ambiguous, so a page this size only
/// needs to hold every contact added in the window when the create sent no key at all.
const PAGE_LIMIT: u32 = 100;

/// What a contact create with `body` (POST /contacts/) sent that recognises the contact it
/// made; `id_field`: the custom field that carries the SightMill id, when the body sets it.
pub fn sent(body: &Map<String, Value>, id_field: Option<&str>) -> Sent {
    let owned = |name: &str| text_field(body, name).map(str::to_owned);
    let tag = body.get("tags").and_then(Value::as_array).and_then(|tags| tags.first());
    Sent {
        email: owned("email"),
        phone: owned("phone"),
        first_name: owned("firstName"),
        last_name: owned("lastName"),
        name: owned("name"),
        tag: tag.and_then(Value::as_str).map(str::to_owned),
        id_field: id_field.map(str::to_owned),
        ..Sent::default()
    }
}

/// A create's text field, absent when missing, not text, or empty.
fn text_field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str).filter(|text| !text.is_empty())
}

/// The search for the contact the create in doubt made for `sightmill_id`.
pub fn search(location_id: &str, sightmill_id: &str, doubt: &CreateInDoubt) -> ApiRequest {
    let since = format_rfc3339(doubt.sent_at - CLOCK_SKEW_MS);
    let mut filters = vec![json!({ "field": "dateAdded", "operator": "range", "value": { "gte": since } })];
    filters.extend(key_filter(&doubt.sent, sightmill_id));
    let body = json!({
        "locationId": location_id,
        "page": 1,
        "pageLimit": PAGE_LIMIT,
        "filters": filters,
        "sort": [{ "field": "dateAdded", "direction": "desc" }],
    });
    ApiRequest::post("/contacts/search", body)
}

/// The most exact key the create sent, as a search filter.
fn key_filter(sent: &Sent, sightmill_id: &str) -> Option<Value> {
    let eq = |field: String, value: &str| json!({ "field": field, "operator": "eq", "value": value });
    if let Some(id) = &sent.id_field {
        return Some(eq(format!("customFields.{id}"), sightmill_id));
    }
    let lower = |text: &String| crate::case::lowercase(text);
    sent.email
        .as_ref()
        .map(|email| eq("email".into(), &lower(email)))
        .or_else(|| sent.phone.as_ref().map(|phone| eq("phone".into(), phone)))
        .or_else(|| sent.first_name.as_ref().map(|name| eq("firstNameLowerCase".into(), &lower(name))))
        .or_else(|| sent.last_name.as_ref().map(|name| eq("lastNameLowerCase".into(), &lower(name))))
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The create was not applied.
    Nothing,
    /// The contact it made.
    One(ApiId),
    /// Two contacts (the newest two) could be it.
    Ambiguous(ApiId, ApiId),
}

/// Reads a search answer; `Err` when it holds no contact list, or when the create sent no key
/// and the window held more contacts than one page (the one that matches may be on another).
pub fn find(answer: &Value, sightmill_id: &str, doubt: &CreateInDoubt) -> Result<Found, String> {
    let Some(contacts) = answer.get("contacts").and_then(Value::as_array) else {
        return Err("the contact search's answer carried no `contacts` list".into());
    };
    let total = answer.get("total").and_then(Value::as_u64).unwrap_or(contacts.len() as u64);
    if key_filter(&doubt.sent, sightmill_id).is_none() && total > contacts.len() as u64 {
        return Err(format!(
            "the create sent no email, phone or name, and {total} contacts were added since it was sent: \
             too many to tell which one it made"
        ));
    }
    let mut matches = contacts
        .iter()
        .filter(|contact| added_since(contact, doubt.sent_at - CLOCK_SKEW_MS))
        .filter(|contact| made_by(contact, &doubt.sent, sightmill_id))
        .filter_map(|contact| contact.get("id").and_then(Value::as_str).and_then(ApiId::parse));
    Ok(match (matches.next(), matches.next()) {
        (None, _) => Found::Nothing,
        (Some(id), None) => Found::One(id),
        (Some(first), Some(second)) => Found::Ambiguous(first, second),
    })
}

/// Whether the contact was added no earlier than `since` (a contact that says nothing counts).
fn added_since(contact: &Value, since: UnixMillis) -> bool {
    let added = contact.get("dateAdded").and_then(Value::as_str).and_then(parse_rfc3339);
    added.is_none_or(|at| at >= since)
}

/// Whether `contact` holds everything the create sent: email and names compared without case,
/// phones by their digits, the SightMill id's custom field by value.
fn made_by(contact: &Value, sent: &Sent, sightmill_id: &str) -> bool {
    let text = |name: &str| contact.get(name).and_then(Value::as_str).unwrap_or_default();
    let same_text = |sent: &Option<String>, names: &[&str]| {
        sent.as_ref().is_none_or(|sent| {
            names.iter().any(|name| crate::case::lowercase(text(name)) == crate::case::lowercase(sent))
        })
    };
    let digits = |phone: &str| phone.chars().filter(char::is_ascii_digit).collect::<String>();
    let same_phone = sent.phone.as_ref().is_none_or(|phone| digits(text("phone")) == digits(phone));
    let same_id =
        sent.id_field.as_ref().is_none_or(|field| custom_value(contact, field) == Some(sightmill_id));
    same_text(&sent.email, &["email", "emailLowerCase"])
        && same_text(&sent.first_name, &["firstName", "firstNameLowerCase"])
        && same_text(&sent.last_name, &["lastName", "lastNameLowerCase"])
        && same_text(&sent.name, &["name", "contactName", "fullNameLowerCase"])
        && same_phone
        && same_id
}

/// A custom field's value on a contact as the API reads it back (`[{id, value}]`).
fn custom_value<'a>(contact: &'a Value, field: &str) -> Option<&'a str> {
    let fields = contact.get("customFields")?.as_array()?;
    let entry = fields.iter().find(|entry| entry.get("id").and_then(Value::as_str) == Some(field))?;
    entry.get("value").or_else(|| entry.get("fieldValue")).and_then(Value::as_str)
}

/// `GET /contacts/search/duplicate` with the email or phone of a create: the contact the location
/// itself would match (the mapping's `existing_contacts: adopt`). `None` without either.
pub fn duplicate_search(location_id: &str, create: &Map<String, Value>) -> Option<ApiRequest> {
    let (email, phone) = (text_field(create, "email"), text_field(create, "phone"));
    if email.is_none() && phone.is_none() {
        return None;
    }
    let pairs = [("locationId", Some(location_id)), ("email", email), ("number", phone)];
    let present = pairs.into_iter().filter_map(|(name, value)| value.map(|value| (name, value)));
    Some(ApiRequest::get("/contacts/search/duplicate").with_query(present))
}

/// The contact a duplicate search answered (`{contact: {...} | null}`); `Err` for another shape.
pub fn duplicate_found(answer: &Value) -> Result<Option<ApiId>, String> {
    match answer.get("contact") {
        None => Err("the duplicate search's answer carried no `contact`".into()),
        Some(Value::Null) => Ok(None),
        Some(contact) => contact
            .get("id")
            .and_then(Value::as_str)
            .and_then(ApiId::parse)
            .map(Some)
            .ok_or_else(|| "the duplicate search's contact carried no usable id".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::Method;

    const SENT_AT: UnixMillis = 1_795_773_600_000; // 2026-11-27T10:00:00Z

    fn doubt(sent: Sent) -> CreateInDoubt {
        CreateInDoubt { updated_at: 5, sent_at: SENT_AT, sent: Box::new(sent) }
    }

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn id(text: &str) -> ApiId {
        ApiId::parse(text).unwrap()
    }

    fn key_of(request: &ApiRequest) -> Option<Value> {
        request.body.as_ref().unwrap()["filters"].as_array().unwrap().get(1).cloned()
    }

    #[test]
    fn a_create_remembers_what_recognises_its_contact() {
        let create = body(
            json!({"email": "a@b.co", "phone": "+15550001", "firstName": "Ada", "lastName": "",
            "tags": ["status:lead"], "locationId": "loc", "customFields": [{"id": "f1", "fieldValue": "sm_1"}]}),
        );
        let sent = sent(&create, Some("f1"));
        assert_eq!(sent.email.as_deref(), Some("a@b.co"));
        assert_eq!(sent.phone.as_deref(), Some("+15550001"));
        assert_eq!(sent.first_name.as_deref(), Some("Ada"));
        assert_eq!(sent.last_name, None, "an empty field is not sent");
        assert_eq!(sent.tag.as_deref(), Some("status:lead"));
        assert_eq!(sent.id_field.as_deref(), Some("f1"));
    }

    #[test]
    fn the_search_uses_the_most_exact_key_and_the_window() {
        let all = Sent {
            email: Some("A@b.co".into()),
            phone: Some("+1555".into()),
            first_name: Some("Ada".into()),
            id_field: Some("f1".into()),
            ..Sent::default()
        };
        let request = search("loc", "sm_1", &doubt(all.clone()));
        assert_eq!((request.method, request.path.as_str()), (Method::Post, "/contacts/search"));
        let body = request.body.clone().unwrap();
        assert_eq!(body["locationId"], "loc");
        assert_eq!(
            body["filters"][0],
            json!({"field": "dateAdded", "operator": "range", "value": {"gte": "2026-11-27T09:50:00.000Z"}})
        );
        assert_eq!(body["sort"], json!([{"field": "dateAdded", "direction": "desc"}]));
        let table = [
            (all.clone(), Some(json!({"field": "customFields.f1", "operator": "eq", "value": "sm_1"}))),
            (
                Sent { id_field: None, ..all.clone() },
                Some(json!({"field": "email", "operator": "eq", "value": "a@b.co"})),
            ),
            (
                Sent { id_field: None, email: None, ..all.clone() },
                Some(json!({"field": "phone", "operator": "eq", "value": "+1555"})),
            ),
            (
                Sent { first_name: Some("Ada".into()), ..Sent::default() },
                Some(json!({"field": "firstNameLowerCase", "operator": "eq", "value": "ada"})),
            ),
            (
                Sent { last_name: Some("Byron".into()), ..Sent::default() },
                Some(json!({"field": "lastNameLowerCase", "operator": "eq", "value": "byron"})),
            ),
            (Sent::default(), None),
        ];
        for (sent, key) in table {
            assert_eq!(key_of(&search("loc", "sm_1", &doubt(sent.clone()))), key, "{sent:?}");
        }
    }

    #[test]
    fn only_a_contact_that_holds_what_was_sent_and_is_new_enough_is_found() {
        let sent = Sent {
            email: Some("a@b.co".into()),
            phone: Some("+1 555 0001".into()),
            first_name: Some("Ada".into()),
            ..Sent::default()
        };
        let doubt = doubt(sent);
        let contact = |id: &str, email: &str, phone: &str, added: &str| json!({"id": id, "email": email, "phone": phone, "firstNameLowerCase": "ada", "dateAdded": added});
        let answer = |contacts: Vec<Value>| json!({ "contacts": contacts, "total": contacts.len() });
        let fresh = "2026-11-27T10:00:01.000Z";
        let table = [
            (answer(vec![contact("c1", "A@B.co", "+15550001", fresh)]), Found::One(id("c1"))),
            (answer(vec![contact("c1", "a@b.co", "+15550002", fresh)]), Found::Nothing),
            (answer(vec![contact("c1", "x@b.co", "+15550001", fresh)]), Found::Nothing),
            (answer(vec![contact("c1", "a@b.co", "+15550001", "2026-11-27T09:00:00Z")]), Found::Nothing),
            (answer(vec![]), Found::Nothing),
            (
                answer(vec![
                    contact("c2", "a@b.co", "+1-555-0001", fresh),
                    contact("c1", "a@b.co", "+15550001", fresh),
                ]),
                Found::Ambiguous(id("c2"), id("c1")),
            ),
        ];
        for (answer, found) in table {
            assert_eq!(find(&answer, "sm_1", &doubt), Ok(found), "{answer}");
        }
        assert!(find(&json!({"contact": {}}), "sm_1", &doubt).is_err());
    }

    #[test]
    fn the_sightmill_id_field_decides_when_the_mapping_has_one() {
        let doubt = doubt(Sent { id_field: Some("f1".into()), ..Sent::default() });
        let with =
            |value: &str| json!({"contacts": [{"id": "c1", "customFields": [{"id": "f1", "value": value}]}]});
        assert_eq!(find(&with("sm_1"), "sm_1", &doubt), Ok(Found::One(id("c1"))));
        assert_eq!(find(&with("sm_2"), "sm_1", &doubt), Ok(Found::Nothing));
    }

    #[test]
    fn a_create_that_sent_no_key_cannot_be_found_among_more_than_a_page() {
        let doubt = doubt(Sent::default());
        let page = json!({"contacts": [{"id": "c1"}], "total": 1});
        assert_eq!(find(&page, "sm_1", &doubt), Ok(Found::One(id("c1"))));
        let more = json!({"contacts": [{"id": "c1"}], "total": 101});
        assert!(find(&more, "sm_1", &doubt).unwrap_err().contains("101 contacts"));
    }

    #[test]
    fn the_duplicate_search_asks_by_email_and_phone() {
        let request = duplicate_search("loc", &body(json!({"email": "a+b@c.co", "phone": "+1555"}))).unwrap();
        assert_eq!(
            request.path,
            "/contacts/search/duplicate?locationId=loc&email=a%2Bb%40c.co&number=%2B1555"
        );
        assert_eq!(duplicate_search("loc", &body(json!({"firstName": "Ada"}))), None);
        assert_eq!(duplicate_found(&json!({"contact": {"id": "c1"}})), Ok(Some(id("c1"))));
        assert_eq!(duplicate_found(&json!({"contact": null})), Ok(None));
        assert!(duplicate_found(&json!({})).is_err());
    }
}
