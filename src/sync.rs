//! Contact sync as a small state machine: plans the Contacts API calls for one contact event and
//! interprets each answer, until the event is applied or has failed. The shell only sends.

use serde_json::{Map, Value};

use crate::contacts_api::{Answer, ApiRequest, ContactId};
use crate::event::SightmillContact;
use crate::mapping::{contact_fields, ContactMapping, Purpose};
use crate::records::{Action, ContactLink, Outcome};

/// The first move for a contact event.
#[derive(Debug)]
pub enum Start {
    /// Older than what was applied already: nothing to send.
    Stale(ContactId),
    /// Send `request`, then feed its answer to `sync`.
    Send(ContactSync, ApiRequest),
}

/// The move after an answer.
#[derive(Debug, PartialEq)]
pub enum Next {
    Send(ApiRequest),
    Applied { link: ContactLink, action: Action },
    Failed(Failure),
}

/// Why an attempt did not apply the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 5xx, 429, timeout or network: retrying may help.
    Retryable {
        detail: String,
        retry_after_secs: Option<u64>,
    },
    /// The token was refused: retrying after a token fix may help.
    TokenRejected,
    /// The `Version` header was refused: a deployment problem.
    Misconfigured(String),
    /// The API refused the change for good (or answered something unusable).
    Rejected { api_status: u16, message: String },
}

impl Failure {
    /// The stored outcome for failures that end the webhook; `None` when it stays pending.
    pub fn final_outcome(&self) -> Option<Outcome> {
        match self {
            Failure::Rejected {
                api_status,
                message,
            } => Some(Outcome::Rejected {
                api_status: *api_status,
                message: message.clone(),
            }),
            _ => None,
        }
    }

    /// A short description for logs and the pending record (never contains a secret).
    pub fn describe(&self) -> String {
        match self {
            Failure::Retryable { detail, .. } => detail.clone(),
            Failure::TokenRejected => "the Contacts API refused the access token".into(),
            Failure::Misconfigured(detail) => detail.clone(),
            Failure::Rejected {
                api_status,
                message,
            } => format!("HTTP {api_status}: {message}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Creating,
    Updating {
        contact_id: ContactId,
        adopted: bool,
    },
}

/// One contact event in flight.
#[derive(Debug)]
pub struct ContactSync {
    update_fields: Map<String, Value>,
    updated_at: i64,
    stage: Stage,
}

impl ContactSync {
    /// Plans the first call: update when the contact is mapped, create otherwise.
    pub fn start(
        contact: &SightmillContact,
        link: Option<&ContactLink>,
        location_id: &str,
        mapping: &ContactMapping,
    ) -> Start {
        let update_fields = contact_fields(contact, mapping, Purpose::Update);
        let (stage, request) = match link {
            Some(link) if contact.updated_at < link.updated_at => {
                return Start::Stale(link.contact_id.clone())
            }
            Some(link) => (
                Stage::Updating {
                    contact_id: link.contact_id.clone(),
                    adopted: false,
                },
                ApiRequest::update_contact(&link.contact_id, update_fields.clone()),
            ),
            None => (
                Stage::Creating,
                ApiRequest::create_contact(
                    location_id,
                    contact_fields(contact, mapping, Purpose::Create),
                ),
            ),
        };
        let sync = ContactSync {
            update_fields,
            updated_at: contact.updated_at,
            stage,
        };
        Start::Send(sync, request)
    }

    /// Interprets the answer to the last request sent.
    pub fn on_answer(&mut self, answer: Answer) -> Next {
        match (&self.stage, answer) {
            (Stage::Creating, Answer::Success(body)) => match created_id(&body) {
                Some(contact_id) => self.applied(contact_id, Action::Created),
                None => Next::Failed(Failure::Rejected {
                    api_status: 201,
                    message: "the create answer carried no usable contact.id".into(),
                }),
            },
            (Stage::Creating, Answer::Duplicate(contact_id)) => {
                let request = ApiRequest::update_contact(&contact_id, self.update_fields.clone());
                self.stage = Stage::Updating {
                    contact_id,
                    adopted: true,
                };
                Next::Send(request)
            }
            (
                Stage::Updating {
                    contact_id,
                    adopted,
                },
                Answer::Success(_),
            ) => {
                let action = if *adopted {
                    Action::Adopted
                } else {
                    Action::Updated
                };
                self.applied(contact_id.clone(), action)
            }
            (_, answer) => Next::Failed(failure(answer)),
        }
    }

    fn applied(&self, contact_id: ContactId, action: Action) -> Next {
        Next::Applied {
            link: ContactLink {
                contact_id,
                updated_at: self.updated_at,
            },
            action,
        }
    }
}

fn created_id(body: &Value) -> Option<ContactId> {
    body.pointer("/contact/id")
        .and_then(Value::as_str)
        .and_then(ContactId::parse)
}

fn failure(answer: Answer) -> Failure {
    match answer {
        Answer::Unavailable { detail } => Failure::Retryable {
            detail,
            retry_after_secs: None,
        },
        Answer::RateLimited { retry_after_secs } => Failure::Retryable {
            detail: "HTTP 429: rate limited".into(),
            retry_after_secs,
        },
        Answer::TokenRejected => Failure::TokenRejected,
        Answer::VersionRejected => Failure::Misconfigured(
            "the Contacts API refused the Version header (expected 2021-07-28)".into(),
        ),
        Answer::Rejected { status, message } => Failure::Rejected {
            api_status: status,
            message,
        },
        Answer::Duplicate(id) => Failure::Rejected {
            api_status: 400,
            message: format!("unexpected duplicate report for contact {}", id.as_str()),
        },
        Answer::Success(_) => Failure::Rejected {
            api_status: 200,
            message: "unexpected success answer".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::Method;
    use crate::event::Field;
    use serde_json::json;

    fn contact(updated_at: i64) -> SightmillContact {
        SightmillContact {
            id: "sm_1".into(),
            email: Field::Value("ada@example.com".into()),
            name: Field::Absent,
            phone: Field::Null,
            status: Field::Absent,
            updated_at,
        }
    }

    fn id(text: &str) -> ContactId {
        ContactId::parse(text).unwrap()
    }

    fn link(updated_at: i64) -> ContactLink {
        ContactLink {
            contact_id: id("c9"),
            updated_at,
        }
    }

    fn start(contact: &SightmillContact, link: Option<&ContactLink>) -> (ContactSync, ApiRequest) {
        match ContactSync::start(contact, link, "loc-1", &ContactMapping::default()) {
            Start::Send(sync, request) => (sync, request),
            Start::Stale(_) => panic!("unexpectedly stale"),
        }
    }

    #[test]
    fn an_unmapped_contact_is_created_and_linked() {
        let (mut sync, request) = start(&contact(10), None);
        assert_eq!(request.method, Method::Post);
        assert_eq!(
            request.body,
            Some(json!({"email": "ada@example.com", "locationId": "loc-1"}))
        );
        let next = sync.on_answer(Answer::Success(json!({"contact": {"id": "new1"}})));
        assert_eq!(
            next,
            Next::Applied {
                link: ContactLink {
                    contact_id: id("new1"),
                    updated_at: 10
                },
                action: Action::Created
            }
        );
    }

    #[test]
    fn a_mapped_contact_is_updated_in_place_with_nulls_sent() {
        let (mut sync, request) = start(&contact(10), Some(&link(10)));
        assert_eq!(
            (request.method, request.path.as_str()),
            (Method::Put, "/contacts/c9")
        );
        assert_eq!(
            request.body,
            Some(json!({"email": "ada@example.com", "phone": null}))
        );
        let next = sync.on_answer(Answer::Success(json!({"succeded": true})));
        assert!(matches!(
            next,
            Next::Applied {
                action: Action::Updated,
                ..
            }
        ));
    }

    #[test]
    fn a_reported_duplicate_is_adopted_then_updated() {
        let (mut sync, _) = start(&contact(10), None);
        let next = sync.on_answer(Answer::Duplicate(id("old7")));
        let Next::Send(update) = next else {
            panic!("expected an update, got {next:?}")
        };
        assert_eq!(
            (update.method, update.path.as_str()),
            (Method::Put, "/contacts/old7")
        );
        let done = sync.on_answer(Answer::Success(json!({})));
        assert_eq!(
            done,
            Next::Applied {
                link: ContactLink {
                    contact_id: id("old7"),
                    updated_at: 10
                },
                action: Action::Adopted
            }
        );
    }

    #[test]
    fn an_older_update_is_stale() {
        let outcome = ContactSync::start(
            &contact(9),
            Some(&link(10)),
            "loc-1",
            &ContactMapping::default(),
        );
        assert!(matches!(outcome, Start::Stale(contact_id) if contact_id == id("c9")));
    }

    #[test]
    fn failures_are_classified_for_the_shell() {
        let table = vec![
            (
                Answer::transport_failure("timed out after 10000 ms"),
                Failure::Retryable {
                    detail: "timed out after 10000 ms".into(),
                    retry_after_secs: None,
                },
            ),
            (
                Answer::RateLimited {
                    retry_after_secs: Some(3),
                },
                Failure::Retryable {
                    detail: "HTTP 429: rate limited".into(),
                    retry_after_secs: Some(3),
                },
            ),
            (Answer::TokenRejected, Failure::TokenRejected),
            (
                Answer::Rejected {
                    status: 422,
                    message: "property x should not exist".into(),
                },
                Failure::Rejected {
                    api_status: 422,
                    message: "property x should not exist".into(),
                },
            ),
            (
                Answer::Success(json!({"contact": {"id": "a/b"}})),
                Failure::Rejected {
                    api_status: 201,
                    message: "the create answer carried no usable contact.id".into(),
                },
            ),
        ];
        for (answer, expected) in table {
            let (mut sync, _) = start(&contact(1), None);
            assert_eq!(sync.on_answer(answer), Next::Failed(expected));
        }
        let (mut sync, _) = start(&contact(1), None);
        assert!(matches!(
            sync.on_answer(Answer::VersionRejected),
            Next::Failed(Failure::Misconfigured(_))
        ));
    }

    #[test]
    fn only_rejections_end_the_webhook() {
        assert!(Failure::TokenRejected.final_outcome().is_none());
        let rejected = Failure::Rejected {
            api_status: 422,
            message: "m".into(),
        };
        assert_eq!(
            rejected.final_outcome(),
            Some(Outcome::Rejected {
                api_status: 422,
                message: "m".into()
            })
        );
    }
}
