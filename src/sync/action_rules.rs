//! The mapping's rules beyond fields, as written: what each waits for (a status that becomes or
//! leaves a value, a tag added or removed) and what it does (a contact added to or removed from a
//! workflow or a campaign, followers added or removed), read from and written back to the
//! mapping document's `actions`, and the Contacts API call each makes. When they fire and how each
//! is kept to once is [`crate::sync::actions`].

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::contacts_api::{ApiId, ApiRequest, Method};

/// Most rules a mapping may hold; at most [`crate::sync::actions::MAX_FIRED`] fire for one event.
pub const MAX_RULES: usize = 20;

/// What a rule waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    StatusBecomes(String),
    StatusLeaves(String),
    TagAdded(String),
    TagRemoved(String),
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    AddToWorkflow(ApiId),
    RemoveFromWorkflow(ApiId),
    AddToCampaign(ApiId),
    RemoveFromCampaign(ApiId),
    AddFollowers(Vec<String>),
    RemoveFollowers(Vec<String>),
}

const TRIGGERS: [&str; 4] = ["status_becomes", "status_leaves", "tag_added", "tag_removed"];
const EFFECTS: [&str; 6] = [
    "add_to_workflow",
    "remove_from_workflow",
    "add_to_campaign",
    "remove_from_campaign",
    "add_followers",
    "remove_followers",
];

impl Effect {
    pub fn name(&self) -> &'static str {
        let index = match self {
            Effect::AddToWorkflow(_) => 0,
            Effect::RemoveFromWorkflow(_) => 1,
            Effect::AddToCampaign(_) => 2,
            Effect::RemoveFromCampaign(_) => 3,
            Effect::AddFollowers(_) => 4,
            Effect::RemoveFollowers(_) => 5,
        };
        EFFECTS[index]
    }

    /// Whether sending it twice changes nothing more than once (removals; followers are a set).
    pub fn resend_safe(&self) -> bool {
        !matches!(self, Effect::AddToWorkflow(_) | Effect::AddToCampaign(_))
    }

    /// The call for contact `contact`.
    pub fn request(&self, contact: &ApiId) -> ApiRequest {
        let (method, path, body) = match self {
            Effect::AddToWorkflow(id) => {
                (Method::Post, format!("/contacts/{contact}/workflow/{id}"), Some(json!({})))
            }
            Effect::RemoveFromWorkflow(id) => {
                (Method::Delete, format!("/contacts/{contact}/workflow/{id}"), Some(json!({})))
            }
            Effect::AddToCampaign(id) => {
                (Method::Post, format!("/contacts/{contact}/campaigns/{id}"), Some(json!({})))
            }
            Effect::RemoveFromCampaign(id) => {
                (Method::Delete, format!("/contacts/{contact}/campaigns/{id}"), None)
            }
            Effect::AddFollowers(users) => {
                (Method::Post, format!("/contacts/{contact}/followers"), Some(json!({ "followers": users })))
            }
            Effect::RemoveFollowers(users) => (
                Method::Delete,
                format!("/contacts/{contact}/followers"),
                Some(json!({ "followers": users })),
            ),
        };
        ApiRequest { method, path, body }
    }
}

/// One rule of the mapping's `actions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRule {
    pub trigger: Trigger,
    pub effect: Effect,
    /// The workflow's or campaign's name as the console picked it (shown, never sent).
    pub name: Option<String>,
}

/// An `actions` entry's fields, read by hand from its JSON (a derived reader costs the Wasm more).
struct RuleDocument {
    when: String,
    value: String,
    effect: String,
    id: Option<String>,
    followers: Option<Vec<String>>,
    name: Option<String>,
}

const RULE_FIELDS: [&str; 6] = ["when", "value", "do", "id", "followers", "name"];

impl RuleDocument {
    fn read(entry: Value) -> Result<RuleDocument, String> {
        let Value::Object(fields) = entry else {
            return Err("an action must be an object".into());
        };
        if let Some(unknown) = fields.keys().find(|key| !RULE_FIELDS.contains(&key.as_str())) {
            return Err(format!("unknown field `{unknown}`, expected one of {}", RULE_FIELDS.join(", ")));
        }
        let text = |name: &str| match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!("`{name}` must be a string")),
        };
        let required = |name: &str| text(name)?.ok_or_else(|| format!("missing field `{name}`"));
        let followers = match fields.get("followers") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("`followers` must be a list of user ids")?,
            ),
            Some(_) => return Err("`followers` must be a list of user ids".into()),
        };
        Ok(RuleDocument {
            when: required("when")?,
            value: required("value")?,
            effect: required("do")?,
            id: text("id")?,
            followers,
            name: text("name")?,
        })
    }
}

impl ActionRule {
    /// One `actions` entry: `{"when", "value", "do", "id" | "followers", "name"?}`.
    pub fn parse(entry: Value) -> Result<ActionRule, String> {
        let document = RuleDocument::read(entry)?;
        let value = document.value.trim().to_owned();
        if value.is_empty() {
            return Err("`value` must be the status or tag to watch".into());
        }
        let trigger = match document.when.as_str() {
            "status_becomes" => Trigger::StatusBecomes(value),
            "status_leaves" => Trigger::StatusLeaves(value),
            "tag_added" => Trigger::TagAdded(value),
            "tag_removed" => Trigger::TagRemoved(value),
            other => return Err(format!("`when` must be one of {}, not `{other}`", TRIGGERS.join(", "))),
        };
        let id = || {
            let id = document.id.as_deref().ok_or("needs `id` (the workflow's or campaign's id)")?;
            ApiId::parse(id).ok_or_else(|| format!("`{id}` is not a workflow or campaign id"))
        };
        let followers = || match &document.followers {
            Some(users)
                if !users.is_empty()
                    && users.len() <= 20
                    && users.iter().all(|u| ApiId::parse(u).is_some()) =>
            {
                Ok(users.clone())
            }
            _ => Err("needs `followers`: 1 to 20 user ids".to_owned()),
        };
        let effect = match document.effect.as_str() {
            "add_to_workflow" => Effect::AddToWorkflow(id()?),
            "remove_from_workflow" => Effect::RemoveFromWorkflow(id()?),
            "add_to_campaign" => Effect::AddToCampaign(id()?),
            "remove_from_campaign" => Effect::RemoveFromCampaign(id()?),
            "add_followers" => Effect::AddFollowers(followers()?),
            "remove_followers" => Effect::RemoveFollowers(followers()?),
            other => return Err(format!("`do` must be one of {}, not `{other}`", EFFECTS.join(", "))),
        };
        let extra = match &effect {
            Effect::AddFollowers(_) | Effect::RemoveFollowers(_) => document.id.is_some(),
            _ => document.followers.is_some(),
        };
        if extra {
            return Err(format!(
                "`{}` takes {}",
                effect.name(),
                if document.id.is_some() { "`followers`, not `id`" } else { "`id`, not `followers`" }
            ));
        }
        Ok(ActionRule { trigger, effect, name: document.name })
    }

    /// The entry [`ActionRule::parse`] reads back.
    pub fn document(&self) -> Value {
        let (when, value) = match &self.trigger {
            Trigger::StatusBecomes(v) => ("status_becomes", v),
            Trigger::StatusLeaves(v) => ("status_leaves", v),
            Trigger::TagAdded(v) => ("tag_added", v),
            Trigger::TagRemoved(v) => ("tag_removed", v),
        };
        let mut entry = json!({ "when": when, "value": value, "do": self.effect.name() });
        match &self.effect {
            Effect::AddFollowers(users) | Effect::RemoveFollowers(users) => entry["followers"] = json!(users),
            Effect::AddToWorkflow(id)
            | Effect::RemoveFromWorkflow(id)
            | Effect::AddToCampaign(id)
            | Effect::RemoveFromCampaign(id) => entry["id"] = json!(id),
        }
        if let Some(name) = &self.name {
            entry["name"] = json!(name);
        }
        entry
    }

    /// The rule's ledger name: a digest of what it waits for and does (not of its place in the
    /// list, so that reordering the rules keeps their rows).
    pub fn digest(&self) -> String {
        use base64::Engine;
        let mut what = self.document();
        what.as_object_mut().map(|fields| fields.remove("name"));
        let digest = Sha256::digest(what.to_string().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12])
    }
}

/// `add_to_workflow wf_1 ("Onboarding")`.
pub fn describe(rule: &ActionRule) -> String {
    let target = match &rule.effect {
        Effect::AddToWorkflow(id)
        | Effect::RemoveFromWorkflow(id)
        | Effect::AddToCampaign(id)
        | Effect::RemoveFromCampaign(id) => id.to_string(),
        Effect::AddFollowers(users) | Effect::RemoveFollowers(users) => users.join(","),
    };
    match &rule.name {
        Some(name) => format!("{} {target} (\"{name}\")", rule.effect.name()),
        None => format!("{} {target}", rule.effect.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(entry: Value) -> ActionRule {
        ActionRule::parse(entry).unwrap()
    }

    fn rules() -> Vec<ActionRule> {
        vec![
            rule(
                json!({"when": "status_becomes", "value": "customer", "do": "add_to_workflow", "id": "wf1", "name": "Onboarding"}),
            ),
            rule(
                json!({"when": "status_leaves", "value": "customer", "do": "remove_from_workflow", "id": "wf1"}),
            ),
            rule(json!({"when": "tag_added", "value": "vip", "do": "add_followers", "followers": ["u1"]})),
            rule(json!({"when": "tag_removed", "value": "vip", "do": "remove_from_campaign", "id": "c1"})),
        ]
    }

    #[test]
    fn rules_read_back_from_their_documents_and_refuse_what_cannot_work() {
        for rule in rules() {
            assert_eq!(ActionRule::parse(rule.document()).unwrap(), rule);
        }
        let table = [
            (
                json!({"when": "status_is", "value": "a", "do": "add_to_workflow", "id": "w"}),
                "`when` must be one of",
            ),
            (
                json!({"when": "tag_added", "value": " ", "do": "add_to_workflow", "id": "w"}),
                "`value` must be",
            ),
            (json!({"when": "tag_added", "value": "a", "do": "enrol", "id": "w"}), "`do` must be one of"),
            (json!({"when": "tag_added", "value": "a", "do": "add_to_workflow"}), "needs `id`"),
            (
                json!({"when": "tag_added", "value": "a", "do": "add_to_campaign", "id": "../x"}),
                "not a workflow or campaign id",
            ),
            (
                json!({"when": "tag_added", "value": "a", "do": "add_followers", "followers": []}),
                "1 to 20 user ids",
            ),
            (
                json!({"when": "tag_added", "value": "a", "do": "add_followers", "followers": ["u"], "id": "w"}),
                "takes `followers`, not `id`",
            ),
            (
                json!({"when": "tag_added", "value": "a", "do": "add_to_workflow", "id": "w", "extra": 1}),
                "unknown field",
            ),
        ];
        for (entry, problem) in table {
            let error = ActionRule::parse(entry.clone()).unwrap_err();
            assert!(error.contains(problem), "{entry}: {error}");
        }
    }

    #[test]
    fn each_action_is_the_call_the_spec_describes() {
        let contact = ApiId::parse("c9").unwrap();
        let calls: Vec<(Method, String, Option<Value>)> = rules()
            .iter()
            .map(|rule| rule.effect.request(&contact))
            .map(|request| (request.method, request.path, request.body))
            .collect();
        assert_eq!(
            calls,
            vec![
                (Method::Post, "/contacts/c9/workflow/wf1".into(), Some(json!({}))),
                (Method::Delete, "/contacts/c9/workflow/wf1".into(), Some(json!({}))),
                (Method::Post, "/contacts/c9/followers".into(), Some(json!({"followers": ["u1"]}))),
                (Method::Delete, "/contacts/c9/campaigns/c1".into(), None),
            ]
        );
        assert_eq!(rules()[0].effect.name(), "add_to_workflow");
        assert!(
            !rules()[0].effect.resend_safe()
                && rules()[1].effect.resend_safe()
                && rules()[2].effect.resend_safe()
        );
    }
}
