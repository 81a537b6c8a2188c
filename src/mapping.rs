//! How a SightMill contact becomes a Contacts API body: the planning step's field mapping.
//! Pure: the same contact and mapping always give the same body.

use serde_json::{json, Map, Value};

use crate::event::{Field, SightmillContact};

/// What the operator configured about contact fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactMapping {
    /// Contacts API custom field that receives SightMill's `status`; `None` leaves status unsent.
    pub status_field_id: Option<String>,
}

/// Whether the body is for POST /contacts/ (nulls mean nothing there) or PUT (nulls clear a field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Update,
}

/// The Contacts API fields for `contact`: `name` is sent whole and split into
/// `firstName`/`lastName` at the first space; strings are trimmed and empty ones count as null.
pub fn contact_fields(
    contact: &SightmillContact,
    mapping: &ContactMapping,
    purpose: Purpose,
) -> Map<String, Value> {
    let mut fields = Map::new();
    let mut put = |key: &str, field: Field| match field {
        Field::Absent => {}
        Field::Null if purpose == Purpose::Create => {}
        Field::Null => {
            fields.insert(key.to_owned(), Value::Null);
        }
        Field::Value(text) => {
            fields.insert(key.to_owned(), Value::String(text));
        }
    };

    let name = trimmed(&contact.name);
    let (first, last) = split_name(&name);
    put("name", name);
    put("firstName", first);
    put("lastName", last);
    put("email", trimmed(&contact.email));
    put("phone", trimmed(&contact.phone));

    if let Some(field_id) = &mapping.status_field_id {
        let value = match trimmed(&contact.status) {
            Field::Absent => None,
            Field::Null => Some(Value::String(String::new())),
            Field::Value(status) => Some(Value::String(status)),
        };
        if let Some(value) = value {
            fields.insert(
                "customFields".into(),
                json!([{ "id": field_id, "field_value": value }]),
            );
        }
    }
    fields
}

fn trimmed(field: &Field) -> Field {
    match field {
        Field::Value(text) if text.trim().is_empty() => Field::Null,
        Field::Value(text) => Field::Value(text.trim().to_owned()),
        other => other.clone(),
    }
}

fn split_name(name: &Field) -> (Field, Field) {
    match name {
        Field::Absent => (Field::Absent, Field::Absent),
        Field::Null => (Field::Null, Field::Null),
        Field::Value(full) => match full.split_once(char::is_whitespace) {
            Some((first, last)) => (
                Field::Value(first.to_owned()),
                Field::Value(last.trim().to_owned()),
            ),
            None => (Field::Value(full.clone()), Field::Null),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(name: Field, email: Field, phone: Field, status: Field) -> SightmillContact {
        SightmillContact {
            id: "sm_1".into(),
            email,
            name,
            phone,
            status,
            updated_at: 0,
        }
    }

    fn value(text: &str) -> Field {
        Field::Value(text.into())
    }

    #[test]
    fn a_full_contact_maps_to_every_field() {
        let mapping = ContactMapping {
            status_field_id: Some("cf_status".into()),
        };
        let input = contact(
            value(" Ada  King Lovelace "),
            value(" ada@example.com"),
            value("+15550100"),
            value("active"),
        );
        let body = contact_fields(&input, &mapping, Purpose::Create);
        assert_eq!(
            Value::Object(body),
            json!({
                "name": "Ada  King Lovelace",
                "firstName": "Ada",
                "lastName": "King Lovelace",
                "email": "ada@example.com",
                "phone": "+15550100",
                "customFields": [{"id": "cf_status", "field_value": "active"}],
            })
        );
    }

    #[test]
    fn nulls_clear_on_update_and_vanish_on_create() {
        let input = contact(Field::Null, value("  "), Field::Absent, value("lead"));
        let mapping = ContactMapping::default();
        assert_eq!(
            Value::Object(contact_fields(&input, &mapping, Purpose::Update)),
            json!({"name": null, "firstName": null, "lastName": null, "email": null})
        );
        assert_eq!(
            Value::Object(contact_fields(&input, &mapping, Purpose::Create)),
            json!({})
        );
    }

    #[test]
    fn a_single_word_name_has_no_last_name() {
        let input = contact(value("Plato"), Field::Absent, Field::Absent, Field::Absent);
        let body = contact_fields(&input, &ContactMapping::default(), Purpose::Update);
        assert_eq!(
            Value::Object(body),
            json!({"name": "Plato", "firstName": "Plato", "lastName": null})
        );
    }
}
