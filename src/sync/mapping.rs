//! The operator's field mapping: how SightMill contact fields become Contacts API fields. Parsed
//! and checked once from its JSON document (`CONTACT_MAPPING`) before any event is processed with
//! it; applied to each contact during planning, all or nothing.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::case;
use crate::sync::action_rules::{ActionRule, MAX_RULES};
use crate::sync::custom_fields::{self, Conversion, Definitions, FieldDef, FieldRef};
use crate::sync::phone::to_e164;

/// Largest mapping document the operator API stores as a live mapping, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;

/// Whether a body is for POST /contacts/ (nulls mean nothing; create-only fields allowed) or for
/// PUT /contacts/{id} (nulls clear a field; create-only fields left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Update,
}

/// A mapping saved through the operator API (its document, who saved it, when): the location's
/// mapping from then on, in place of the deployed `CONTACT_MAPPING`, until it is removed.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveMapping {
    pub document: Value,
    /// The saving key's fingerprint ([`crate::auth::api_keys::fingerprint`]).
    pub saved_by: String,
    pub saved_at: crate::timestamp::UnixMillis,
}

impl LiveMapping {
    pub fn mapping(&self) -> Result<Mapping, MappingError> {
        Mapping::parse(&self.document.to_string())
    }

    /// As stored and answered: `{"document", "saved_by", "saved_at"}` (built by hand, as
    /// [`LiveMapping::from_json`] reads it: a derived serde pair costs the Wasm more).
    pub fn to_json(&self) -> Value {
        json!({ "document": self.document, "saved_by": self.saved_by, "saved_at": self.saved_at })
    }

    pub fn from_json(value: &Value) -> Option<LiveMapping> {
        Some(LiveMapping {
            document: value.get("document")?.clone(),
            saved_by: value.get("saved_by")?.as_str()?.to_owned(),
            saved_at: value.get("saved_at")?.as_i64()?,
        })
    }
}

/// A checked mapping, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    rules: Vec<Rule>,
    status: Option<StatusTarget>,
    default_country_code: Option<String>,
    /// What the contact's status and tags set off beyond fields ([`crate::sync::actions`]).
    actions: Vec<ActionRule>,
    existing_contacts: ExistingContacts,
    /// The contact custom field (by id) that carries the SightMill id, set on create.
    sightmill_id_field: Option<String>,
}

/// What a contact new to the worker does when the location already holds a contact with its
/// email or phone and ALLOWS duplicates (a location that refuses them always answers with the
/// existing contact, which is adopted either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExistingContacts {
    /// Create a contact of its own, as the location's setting asks (the default): two SightMill
    /// contacts that share an email never become one Contacts API contact.
    #[default]
    Create,
    /// Adopt the contact `GET /contacts/search/duplicate` finds (email first, then phone) and
    /// update it, as an upsert would: one extra call per new contact.
    Adopt,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    source: Source,
    target: Target,
    transforms: Vec<Transform>,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// A dotted path into the event's `data` (`address.city`).
    Field(Vec<String>),
    /// A constant.
    Constant(Value),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A standard Contacts API field.
    Standard(&'static StandardField),
    /// `firstName` and `lastName`, split at the first space.
    SplitName,
    /// A custom field, by id or by key.
    CustomField(CustomTarget),
}

/// A custom field a mapping writes: how it is named, how its values are converted, what a value
/// that cannot fit does, and (once resolved for a location) its definition there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTarget {
    reference: FieldRef,
    conversion: Conversion,
    on_invalid: OnInvalid,
    /// The location's definition: `None` until [`Mapping::resolve`], or when the location's list
    /// could not be read (an id is then sent as text, a key cannot be).
    field: Option<FieldDef>,
}

/// What a value that cannot fit its custom field does to the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// The event is parked with the reason (the default): nothing half-mapped is sent.
    #[default]
    Park,
    /// The field is left out of the call, and the reason kept on the event.
    Omit,
}

impl OnInvalid {
    fn parse(name: Option<&str>) -> Result<OnInvalid, String> {
        match name {
            None | Some("park") => Ok(OnInvalid::Park),
            Some("omit") => Ok(OnInvalid::Omit),
            Some(other) => Err(format!("`on_invalid` must be `park` or `omit`, not `{other}`")),
        }
    }
}

impl CustomTarget {
    fn parse(text: &str, options: CustomOptions) -> Result<CustomTarget, String> {
        Ok(CustomTarget {
            reference: FieldRef::parse(text)?,
            conversion: Conversion::from_json(options.values.as_ref(), options.max_length)?,
            on_invalid: OnInvalid::parse(options.on_invalid.as_deref())?,
            field: None,
        })
    }

    /// The id the API takes: the resolved field's, else the one the mapping names.
    fn id(&self) -> Option<&str> {
        match (&self.field, &self.reference) {
            (Some(field), _) => Some(&field.id),
            (None, FieldRef::Id(id)) => Some(id),
            (None, FieldRef::Key(_)) => None,
        }
    }

    /// The value as the field takes it (by its type once resolved; as text before), or why not.
    fn convert(&self, value: Value, country_code: Option<&str>) -> Result<Value, String> {
        match &self.field {
            Some(field) => custom_fields::convert(field, value, &self.conversion, country_code),
            None if self.id().is_some() => Ok(value),
            None => Err(format!(
                "`{}` names a custom field by key, and the location's custom fields could not be read (scope {})",
                self.reference.as_str(),
                custom_fields::SCOPE
            )),
        }
    }

    /// The document's extra entries (`values`, `max_length`, `on_invalid`) when they are set.
    fn write_options(&self, document: &mut Value) {
        if !self.conversion.values.is_empty() {
            let values: Map<String, Value> =
                self.conversion.values.iter().map(|(from, to)| (from.clone(), json!(to))).collect();
            document["values"] = Value::Object(values);
        }
        if let Some(max) = self.conversion.max_length {
            document["max_length"] = json!(max);
        }
        if self.on_invalid == OnInvalid::Omit {
            document["on_invalid"] = json!("omit");
        }
    }
}

/// The custom field options of a `fields` or `status` entry.
#[derive(Default)]
struct CustomOptions {
    values: Option<Map<String, Value>>,
    max_length: Option<usize>,
    on_invalid: Option<String>,
}

impl CustomOptions {
    fn given(&self) -> bool {
        self.values.is_some() || self.max_length.is_some() || self.on_invalid.is_some()
    }
}

#[derive(Debug, PartialEq, Eq)]
struct StandardField {
    name: &'static str,
    kind: Kind,
    on_update: OnUpdate,
}

/// What an update (UpdateContactDto) does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnUpdate {
    /// Nullable: a null clears it.
    Clears,
    /// Not nullable: a null is left out, and the field keeps its value.
    KeepsOnNull,
    /// Not in UpdateContactDto: sent on create only.
    Omitted,
}

impl StandardField {
    /// Writes `value` to this field, unless an update leaves it out.
    fn write(&self, value: Value, purpose: Purpose, fields: &mut Map<String, Value>) {
        if purpose == Purpose::Update && !self.updates_with(&value) {
            return;
        }
        fields.insert(self.name.into(), value);
    }

    /// Whether an update sends `value` for this field.
    fn updates_with(&self, value: &Value) -> bool {
        match self.on_update {
            OnUpdate::Clears => true,
            OnUpdate::KeepsOnNull => !value.is_null(),
            OnUpdate::Omitted => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Flag,
}

const fn text(name: &'static str) -> StandardField {
    StandardField { name, kind: Kind::Text, on_update: OnUpdate::Clears }
}

const fn field(name: &'static str, kind: Kind, on_update: OnUpdate) -> StandardField {
    StandardField { name, kind, on_update }
}

/// The Contacts API contact fields a mapping may write (CreateContactDto / UpdateContactDto).
/// The standard fields the default mapping writes by name.
const EMAIL: StandardField = text("email");
const PHONE: StandardField = text("phone");

static STANDARD_FIELDS: [StandardField; 18] = [
    text("firstName"),
    text("lastName"),
    text("name"),
    EMAIL,
    PHONE,
    text("address1"),
    text("city"),
    text("state"),
    field("postalCode", Kind::Text, OnUpdate::KeepsOnNull),
    text("website"),
    text("timezone"),
    field("country", Kind::Text, OnUpdate::KeepsOnNull),
    text("source"),
    text("assignedTo"),
    text("dateOfBirth"),
    field("companyName", Kind::Text, OnUpdate::Omitted),
    field("gender", Kind::Text, OnUpdate::Omitted),
    field("dnd", Kind::Flag, OnUpdate::KeepsOnNull),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    E164,
}

/// Where SightMill's `status` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusTarget {
    /// A tag `{prefix}{status}`, swapped through the tags endpoints when the status changes.
    Tag { prefix: String },
    /// A custom field.
    CustomField(CustomTarget),
}

/// A mapping document that cannot be used, naming the entry and the problem.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("mapping entry `{entry}`: {problem}")]
pub struct MappingError {
    pub entry: String,
    pub problem: String,
}

/// A contact that cannot be mapped (the event is refused; nothing half-mapped is sent).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("field `{field}`: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
    /// Whether a custom field refused the value (the location's definitions may have changed).
    pub custom_field: bool,
}

/// The Contacts API fields for one contact, plus the status tag it should carry.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedContact {
    pub fields: Map<String, Value>,
    /// Custom fields left out because their value cannot fit (`"on_invalid": "omit"`).
    pub omitted: Vec<FieldError>,
    /// What the contact's data says about its status tag (always `Unchanged` unless the mapping
    /// puts the status in a tag).
    pub status_tag: StatusTag,
}

/// The contact's status tag as its data has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusTag {
    /// No `status` key: a partial change leaves the tag as it is.
    Unchanged,
    /// `status` is null or blank: the contact has no status tag any more.
    Cleared,
    /// `status` is set: the contact's tag is the prefix and the status.
    Set(String),
}

impl StatusTag {
    /// The tag the contact carries afterwards, given the one it had.
    pub fn after(self, before: Option<String>) -> Option<String> {
        match self {
            StatusTag::Unchanged => before,
            StatusTag::Cleared => None,
            StatusTag::Set(tag) => Some(tag),
        }
    }
}

// ---- the document ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    fields: Vec<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    default_country_code: Option<String>,
    #[serde(default)]
    actions: Vec<Value>,
    existing_contacts: Option<String>,
    #[serde(default)]
    sightmill_id_field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDocument {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    to: String,
    #[serde(default)]
    transforms: Vec<String>,
    #[serde(default)]
    values: Option<Map<String, Value>>,
    #[serde(default)]
    max_length: Option<usize>,
    #[serde(default)]
    on_invalid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusDocument {
    to: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    values: Option<Map<String, Value>>,
    #[serde(default)]
    on_invalid: Option<String>,
}

impl Default for Mapping {
    /// Used when no mapping is configured: name split into first and last name, email trimmed
    /// and lower-cased, phone trimmed; status not sent.
    fn default() -> Mapping {
        let rule = |from: &str, target, transforms: Vec<Transform>| Rule {
            source: Source::Field(vec![from.to_owned()]),
            target,
            transforms,
        };
        Mapping {
            rules: vec![
                rule("name", Target::SplitName, vec![Transform::Trim]),
                rule("email", Target::Standard(&EMAIL), vec![Transform::Trim, Transform::Lowercase]),
                rule("phone", Target::Standard(&PHONE), vec![Transform::Trim]),
            ],
            status: None,
            default_country_code: None,
            actions: vec![],
            existing_contacts: ExistingContacts::Create,
            sightmill_id_field: None,
        }
    }
}

impl Mapping {
    /// Parses and checks a mapping document.
    pub fn parse(text: &str) -> Result<Mapping, MappingError> {
        let document: Document = serde_json::from_slice(text.as_bytes())
            .map_err(|e| mapping_error("document", format!("not a mapping document: {e}")))?;
        let default_country_code = match document.default_country_code {
            Some(code) if is_country_code(&code) => Some(code),
            Some(_) => return Err(mapping_error("default_country_code", "must be 1-3 digits, e.g. \"1\"")),
            None => None,
        };
        let mut rules = Vec::with_capacity(document.fields.len());
        for (index, entry) in document.fields.into_iter().enumerate() {
            let name = format!("fields[{index}]");
            let rule = parse_rule(entry).map_err(|problem| mapping_error(&name, problem))?;
            if rule.transforms.contains(&Transform::E164) && default_country_code.is_none() {
                return Err(mapping_error(&name, "the e164 transform needs `default_country_code`"));
            }
            if let Some(earlier) = rules.iter().position(|r: &Rule| r.target.overlaps(&rule.target)) {
                return Err(mapping_error(&name, format!("writes the same field as fields[{earlier}]")));
            }
            rules.push(rule);
        }
        let status = document
            .status
            .map(parse_status)
            .transpose()
            .map_err(|problem| mapping_error("status", problem))?;
        if let Some(StatusTarget::CustomField(status)) = &status {
            if rules
                .iter()
                .any(|r| matches!(&r.target, Target::CustomField(c) if c.reference == status.reference))
            {
                return Err(mapping_error("status", "writes the same custom field as a fields entry"));
            }
        }
        if document.actions.len() > MAX_RULES {
            return Err(mapping_error("actions", format!("at most {MAX_RULES} rules")));
        }
        let actions = document
            .actions
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                ActionRule::parse(entry).map_err(|p| mapping_error(&format!("actions[{index}]"), p))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let existing_contacts = match document.existing_contacts.as_deref() {
            None | Some("create") => ExistingContacts::Create,
            Some("adopt") => ExistingContacts::Adopt,
            Some(other) => {
                return Err(mapping_error(
                    "existing_contacts",
                    format!("must be `create` or `adopt`, not `{other}`"),
                ))
            }
        };
        let sightmill_id_field = document
            .sightmill_id_field
            .map(|id| custom_field_id(&id))
            .transpose()
            .map_err(|problem| mapping_error("sightmill_id_field", problem))?;
        if let Some(id) = &sightmill_id_field {
            let named = |target: &CustomTarget| target.reference == FieldRef::Id(id.clone());
            let taken = rules.iter().any(|r| matches!(&r.target, Target::CustomField(c) if named(c)))
                || matches!(&status, Some(StatusTarget::CustomField(c)) if named(c));
            if taken {
                return Err(mapping_error(
                    "sightmill_id_field",
                    "is also written by a fields entry or the status",
                ));
            }
        }
        Ok(Mapping { rules, status, default_country_code, existing_contacts, sightmill_id_field, actions })
    }

    /// The rules beyond fields.
    pub fn actions(&self) -> &[ActionRule] {
        &self.actions
    }

    /// Whether the mapping writes a custom field: it then needs the location's definitions.
    pub fn names_custom_fields(&self) -> bool {
        self.custom_targets().next().is_some()
    }

    /// The custom fields the mapping names, each once, as written.
    pub fn custom_references(&self) -> Vec<&str> {
        self.custom_targets().map(|target| target.reference.as_str()).collect()
    }

    fn custom_targets(&self) -> impl Iterator<Item = &CustomTarget> {
        let status = match &self.status {
            Some(StatusTarget::CustomField(target)) => Some(target),
            _ => None,
        };
        self.rules
            .iter()
            .filter_map(|rule| match &rule.target {
                Target::CustomField(target) => Some(target),
                _ => None,
            })
            .chain(status)
    }

    fn custom_targets_mut(&mut self) -> impl Iterator<Item = &mut CustomTarget> {
        let status = match &mut self.status {
            Some(StatusTarget::CustomField(target)) => Some(target),
            _ => None,
        };
        self.rules
            .iter_mut()
            .filter_map(|rule| match &mut rule.target {
                Target::CustomField(target) => Some(target),
                _ => None,
            })
            .chain(status)
    }

    /// Whether the location's custom fields (`known`, as last read) must be read again before
    /// this mapping is applied to `data` at `now`: read a day ago or more; or read a minute ago
    /// or more and lacking a field the mapping names, or refusing one of the contact's values (a
    /// field, an option or a type may have changed since).
    pub fn needs_fresh_fields(
        &self,
        known: &Definitions,
        data: Option<&Map<String, Value>>,
        now: crate::timestamp::UnixMillis,
    ) -> bool {
        let age = now - known.read_at;
        if !self.names_custom_fields() || age < custom_fields::REREAD_AFTER_MS {
            return false;
        }
        if age >= custom_fields::MAX_AGE_MS {
            return true;
        }
        let refused = |data| match self.resolve(known).map(|mapping| mapping.apply(data, Purpose::Update)) {
            Err(_) => true,
            Ok(Err(error)) => error.custom_field,
            Ok(Ok(mapped)) => !mapped.omitted.is_empty(),
        };
        match data {
            Some(data) => refused(data),
            None => self.resolve(known).is_err(),
        }
    }

    /// The mapping for one location: each custom field it names (by id or key) found among the
    /// location's `definitions`, whose types then convert the values; or the first one the
    /// location does not define, or one written by two entries (an id and a key of one field).
    pub fn resolve(&self, definitions: &Definitions) -> Result<Mapping, String> {
        let mut resolved = self.clone();
        let mut ids: Vec<String> = Vec::new();
        for target in resolved.custom_targets_mut() {
            let field = definitions.find(&target.reference).ok_or_else(|| {
                format!("custom field `{}` is not defined in this location", target.reference.as_str())
            })?;
            if ids.contains(&field.id) {
                return Err(format!(
                    "custom field `{}` is written by two entries",
                    target.reference.as_str()
                ));
            }
            ids.push(field.id.clone());
            target.field = Some(field.clone());
        }
        Ok(resolved)
    }

    pub fn status_target(&self) -> Option<&StatusTarget> {
        self.status.as_ref()
    }

    pub fn existing_contacts(&self) -> ExistingContacts {
        self.existing_contacts
    }

    /// The custom field that carries the SightMill id, if the operator added one.
    pub fn sightmill_id_field(&self) -> Option<&str> {
        self.sightmill_id_field.as_deref()
    }

    /// The create body's custom field entry that records `sightmill_id`, when the mapping has one.
    pub fn sightmill_id_entry(&self, sightmill_id: &str) -> Option<Value> {
        self.sightmill_id_field.as_deref().map(|id| custom_field(id, Value::from(sightmill_id)))
    }

    /// The mapping as a document [`Mapping::parse`] reads back to the same mapping: what the
    /// operator console shows and copies out (the default mapping included).
    pub fn document(&self) -> Value {
        let fields: Vec<Value> = self.rules.iter().map(Rule::document).collect();
        let mut document = json!({ "fields": fields });
        match &self.status {
            Some(StatusTarget::Tag { prefix }) => document["status"] = json!({"to": "tag", "prefix": prefix}),
            Some(StatusTarget::CustomField(target)) => {
                document["status"] = json!({"to": format!("{CUSTOM_FIELD}{}", target.reference.as_str())});
                target.write_options(&mut document["status"]);
            }
            None => {}
        }
        if let Some(code) = &self.default_country_code {
            document["default_country_code"] = json!(code);
        }
        if self.existing_contacts == ExistingContacts::Adopt {
            document["existing_contacts"] = json!("adopt");
        }
        if let Some(id) = &self.sightmill_id_field {
            document["sightmill_id_field"] = json!(id);
        }
        if !self.actions.is_empty() {
            document["actions"] = self.actions.iter().map(ActionRule::document).collect();
        }
        document
    }

    /// Maps SightMill's contact `data` to Contacts API fields, or refuses it whole.
    pub fn apply(&self, data: &Map<String, Value>, purpose: Purpose) -> Result<MappedContact, FieldError> {
        let mut fields = Map::new();
        let mut custom = Custom::default();
        for rule in &self.rules {
            let value = match &rule.source {
                Source::Constant(value) => value.clone(),
                Source::Field(path) => match lookup(data, path) {
                    Some(value) => value.clone(),
                    None => continue,
                },
            };
            let field = rule.source.describe();
            match &rule.target {
                Target::CustomField(target) => {
                    let value = match rule.transforms.is_empty() {
                        true => value,
                        false => self.transform_text(&field, value, &rule.transforms)?.into(),
                    };
                    custom.write(target, &field, value, self.default_country_code.as_deref())?;
                }
                Target::Standard(standard) => {
                    standard.write(self.transform(rule, value)?, purpose, &mut fields)
                }
                Target::SplitName => write_split_name(self.transform(rule, value)?, &mut fields),
            }
        }
        let mut status_tag = StatusTag::Unchanged;
        // The status is only read when the mapping sends it somewhere: otherwise any value is fine.
        if let (Some(target), Some(status)) = (&self.status, data.get("status")) {
            let status = self.transform_text("status", status.clone(), &[Transform::Trim])?;
            match (target, status) {
                (StatusTarget::CustomField(target), status) => {
                    custom.write(target, "status", status.into(), self.default_country_code.as_deref())?
                }
                (StatusTarget::Tag { prefix }, Some(status)) => {
                    status_tag = StatusTag::Set(format!("{prefix}{status}"))
                }
                (StatusTarget::Tag { .. }, None) => status_tag = StatusTag::Cleared,
            }
        }
        let Custom { values: custom, omitted } = custom;
        if !custom.is_empty() {
            fields.insert("customFields".into(), Value::Array(custom));
        }
        if purpose == Purpose::Create {
            fields.retain(|_, value| !value.is_null());
            if let StatusTag::Set(tag) = &status_tag {
                fields.insert("tags".into(), Value::Array(vec![Value::String(tag.clone())]));
            }
        }
        Ok(MappedContact { fields, omitted, status_tag })
    }

    /// What applying the mapping to `data` leaves out, and why: the notes kept on its event.
    pub fn left_out(&self, data: &Map<String, Value>) -> Vec<String> {
        let omitted = self.apply(data, Purpose::Update).map(|mapped| mapped.omitted).unwrap_or_default();
        omitted.iter().map(|error| format!("left out: {error}")).collect()
    }

    fn transform(&self, rule: &Rule, value: Value) -> Result<Value, FieldError> {
        let field = rule.source.describe();
        match rule.target.kind() {
            Kind::Flag => flag(&field, value),
            Kind::Text => {
                Ok(self.transform_text(&field, value, &rule.transforms)?.map_or(Value::Null, Value::String))
            }
        }
    }

    /// A text value after `transforms`; `None` for null or blank.
    fn transform_text(
        &self,
        field: &str,
        value: Value,
        transforms: &[Transform],
    ) -> Result<Option<String>, FieldError> {
        let mut text = match value {
            Value::Null => return Ok(None),
            Value::String(text) => text,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(field_error(field, "must be a string, number or boolean")),
        };
        for transform in transforms {
            text = match transform {
                Transform::Trim => text.trim().to_owned(),
                Transform::Lowercase => case::lowercase(&text),
                Transform::Uppercase => case::uppercase(&text),
                Transform::E164 if text.trim().is_empty() => text,
                Transform::E164 => to_e164(&text, self.default_country_code.as_deref().unwrap_or(""))
                    .ok_or_else(|| field_error(field, "is not a phone number that converts to E.164"))?,
            };
        }
        Ok(Some(text).filter(|t| !t.trim().is_empty()))
    }
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Field(path) => path.join("."),
            Source::Constant(_) => "(constant)".into(),
        }
    }
}

impl Target {
    fn kind(&self) -> Kind {
        match self {
            Target::Standard(field) => field.kind,
            _ => Kind::Text,
        }
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Target::Standard(field) => vec![field.name],
            Target::SplitName => vec!["firstName", "lastName"],
            Target::CustomField(target) => vec![target.reference.as_str()],
        }
    }

    fn overlaps(&self, other: &Target) -> bool {
        let custom = |t: &Target| matches!(t, Target::CustomField(_));
        custom(self) == custom(other) && self.names().iter().any(|name| other.names().contains(name))
    }
}

/// Writes a full name as `firstName` and `lastName`, split at its first space (custom fields go
/// through [`Custom::write`], standard ones through [`StandardField::write`]).
fn write_split_name(value: Value, fields: &mut Map<String, Value>) {
    let (first, last) = match value.as_str() {
        Some(full) => match full.split_once(char::is_whitespace) {
            Some((first, last)) => (Value::from(first), Value::from(last.trim())),
            None => (Value::from(full), Value::Null),
        },
        None => (Value::Null, Value::Null),
    };
    fields.insert("firstName".into(), first);
    fields.insert("lastName".into(), last);
}

/// The custom fields of one contact as they are mapped: the values to send and the ones left out.
#[derive(Default)]
struct Custom {
    values: Vec<Value>,
    omitted: Vec<FieldError>,
}

impl Custom {
    /// Converts `value` (from SightMill's `field`) for `target`: sent, left out with the reason,
    /// or the contact refused, as the target says.
    fn write(
        &mut self,
        target: &CustomTarget,
        field: &str,
        value: Value,
        country_code: Option<&str>,
    ) -> Result<(), FieldError> {
        let converted = target.convert(value, country_code).and_then(|value| match target.id() {
            Some(id) => Ok(custom_field(id, value)),
            None => Err(format!("custom field `{}` has no id", target.reference.as_str())),
        });
        match (converted, target.on_invalid) {
            (Ok(value), _) => self.values.push(value),
            (Err(problem), on_invalid) => {
                let problem = format!("custom field `{}`: {problem}", target.reference.as_str());
                let error = FieldError { field: field.to_owned(), problem, custom_field: true };
                match on_invalid {
                    OnInvalid::Park => return Err(error),
                    OnInvalid::Omit => self.omitted.push(error),
                }
            }
        }
        Ok(())
    }
}

impl Rule {
    fn document(&self) -> Value {
        let mut document = match &self.source {
            Source::Field(path) => json!({ "from": path.join(".") }),
            Source::Constant(value) => json!({ "value": value }),
        };
        document["to"] = json!(match &self.target {
            Target::Standard(field) => field.name.to_owned(),
            Target::SplitName => SPLIT_NAME.to_owned(),
            Target::CustomField(target) => format!("{CUSTOM_FIELD}{}", target.reference.as_str()),
        });
        if !self.transforms.is_empty() {
            document["transforms"] = self.transforms.iter().map(|t| t.name()).collect();
        }
        if let Target::CustomField(target) = &self.target {
            target.write_options(&mut document);
        }
        document
    }
}

const SPLIT_NAME: &str = "firstName+lastName";
const CUSTOM_FIELD: &str = "customField:";
const TRANSFORMS: [Transform; 4] =
    [Transform::Trim, Transform::Lowercase, Transform::Uppercase, Transform::E164];

impl Transform {
    fn name(self) -> &'static str {
        match self {
            Transform::Trim => "trim",
            Transform::Lowercase => "lowercase",
            Transform::Uppercase => "uppercase",
            Transform::E164 => "e164",
        }
    }
}

/// What a mapping may name, for a form to choose from: the targets (each standard field with
/// whether it is true/false and what an update does with it), the transforms and the status
/// targets. The same tables [`Mapping::parse`] checks against.
pub fn catalogue() -> Value {
    let targets: Vec<Value> = STANDARD_FIELDS
        .iter()
        .map(|field| {
            let kind = if field.kind == Kind::Flag { "flag" } else { "text" };
            let on_update = match field.on_update {
                OnUpdate::Clears => "a null clears it",
                OnUpdate::KeepsOnNull => "a null keeps its value",
                OnUpdate::Omitted => "sent on create only",
            };
            json!({ "name": field.name, "kind": kind, "on_update": on_update })
        })
        .collect();
    json!({
        "targets": targets,
        "split_name": SPLIT_NAME,
        "custom_field_prefix": CUSTOM_FIELD,
        "transforms": TRANSFORMS.map(Transform::name),
        "status_targets": ["tag", format!("{CUSTOM_FIELD}<id or key>")],
        "actions": {"when": ["status_becomes", "status_leaves", "tag_added", "tag_removed"], "do": ["add_to_workflow", "remove_from_workflow", "add_to_campaign", "remove_from_campaign", "add_followers", "remove_followers"]},
        "custom_field_options": {"values": "SightMill value -> the field's value", "max_length": "longest text", "on_invalid": ["park", "omit"]},
        "existing_contacts": ["create", "adopt"],
        "max_document_bytes": MAX_DOCUMENT_BYTES,
    })
}

fn parse_rule(entry: Value) -> Result<Rule, String> {
    let document: RuleDocument = serde_json::from_value(entry).map_err(|e| e.to_string())?;
    let source = match (document.from, document.value) {
        (Some(path), None) => Source::Field(parse_path(&path)?),
        (None, Some(value)) if value.is_string() || value.is_boolean() || value.is_number() => {
            Source::Constant(value)
        }
        (None, Some(_)) => return Err("`value` must be a string, number or boolean".into()),
        (Some(_), Some(_)) => return Err("give either `from` or `value`, not both".into()),
        (None, None) => return Err("needs `from` (a SightMill field) or `value` (a constant)".into()),
    };
    let options = CustomOptions {
        values: document.values,
        max_length: document.max_length,
        on_invalid: document.on_invalid,
    };
    let target = match document.to.strip_prefix(CUSTOM_FIELD) {
        Some(reference) => Target::CustomField(CustomTarget::parse(reference, options)?),
        None if options.given() => {
            return Err("`values`, `max_length` and `on_invalid` apply only to custom fields".into())
        }
        None => parse_target(&document.to)?,
    };
    let transforms =
        document.transforms.iter().map(|name| parse_transform(name)).collect::<Result<Vec<_>, _>>()?;
    if target.kind() == Kind::Flag && !transforms.is_empty() {
        return Err(format!("`{}` is true/false and takes no transforms", document.to));
    }
    Ok(Rule { source, target, transforms })
}

fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    if parts.iter().any(|p| p.is_empty()) || path.len() > 200 {
        return Err(format!("`from` must be a field name or dotted path, not `{path}`"));
    }
    Ok(parts)
}

fn parse_target(to: &str) -> Result<Target, String> {
    if to == SPLIT_NAME {
        return Ok(Target::SplitName);
    }
    if let Some(reference) = to.strip_prefix(CUSTOM_FIELD) {
        return CustomTarget::parse(reference, CustomOptions::default()).map(Target::CustomField);
    }
    standard_field(to).map(Target::Standard).ok_or_else(|| {
        format!("unknown target `{to}`: use a Contacts API contact field, `firstName+lastName` or `customField:<id>`")
    })
}

fn parse_status(entry: Value) -> Result<StatusTarget, String> {
    let document: StatusDocument = serde_json::from_value(entry).map_err(|e| e.to_string())?;
    let options =
        CustomOptions { values: document.values, max_length: None, on_invalid: document.on_invalid };
    match (document.to.as_str(), document.prefix) {
        ("tag", _) if options.given() => Err("`values` and `on_invalid` apply only to a custom field".into()),
        ("tag", prefix) => Ok(StatusTarget::Tag { prefix: prefix.unwrap_or_default() }),
        (to, None) if to.starts_with(CUSTOM_FIELD) => {
            CustomTarget::parse(&to[CUSTOM_FIELD.len()..], options).map(StatusTarget::CustomField)
        }
        (_, Some(_)) => Err("`prefix` applies only to `\"to\": \"tag\"`".into()),
        (to, None) => Err(format!("`to` must be `tag` or `customField:<id>`, not `{to}`")),
    }
}

/// A custom field as the API takes it: `{id, fieldValue}` (the spelling the live API and its v3
/// spec take; `field_value` is deprecated there). A null is sent as "", which clears it.
fn custom_field(id: &str, value: Value) -> Value {
    let value = if value.is_null() { Value::from("") } else { value };
    serde_json::json!({ "id": id, "fieldValue": value })
}

fn custom_field_id(id: &str) -> Result<String, String> {
    match FieldRef::parse(id) {
        Ok(FieldRef::Id(id)) => Ok(id),
        _ => Err(format!("`{id}` is not a custom field id")),
    }
}

fn parse_transform(name: &str) -> Result<Transform, String> {
    TRANSFORMS
        .into_iter()
        .find(|transform| transform.name() == name)
        .ok_or_else(|| format!("unknown transform `{name}` (trim, lowercase, uppercase, e164)"))
}

fn standard_field(name: &str) -> Option<&'static StandardField> {
    STANDARD_FIELDS.iter().find(|field| field.name == name)
}

fn lookup<'a>(data: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(data.get(first)?, |value, key| value.get(key))
}

fn flag(field: &str, value: Value) -> Result<Value, FieldError> {
    match value {
        Value::Bool(_) | Value::Null => Ok(value),
        Value::String(text) if text == "true" || text == "false" => Ok(Value::Bool(text == "true")),
        _ => Err(field_error(field, "must be true or false")),
    }
}

fn is_country_code(code: &str) -> bool {
    (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

fn mapping_error(entry: &str, problem: impl Into<String>) -> MappingError {
    MappingError { entry: entry.to_owned(), problem: problem.into() }
}

fn field_error(field: &str, problem: &str) -> FieldError {
    FieldError { field: field.to_owned(), problem: problem.to_owned(), custom_field: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    const FULL: &str = r#"{
        "fields": [
            {"from": "name", "to": "firstName+lastName", "transforms": ["trim"]},
            {"from": "email", "to": "email", "transforms": ["trim", "lowercase"]},
            {"from": "phone", "to": "phone", "transforms": ["e164"]},
            {"from": "company", "to": "companyName"},
            {"from": "billing.plan", "to": "customField:cf_plan"},
            {"from": "country", "to": "country", "transforms": ["uppercase"]},
            {"from": "do_not_disturb", "to": "dnd"},
            {"value": "sightmill", "to": "source"}
        ],
        "status": {"to": "tag", "prefix": "status:"},
        "default_country_code": "1",
        "actions": [{"when": "status_becomes", "value": "customer", "do": "add_to_workflow", "id": "wf1", "name": "Onboarding"}]
    }"#;

    #[test]
    fn a_live_mapping_reads_back_as_stored() {
        let live = LiveMapping {
            document: Mapping::default().document(),
            saved_by: "key:0011aabb".into(),
            saved_at: 7,
        };
        assert_eq!(LiveMapping::from_json(&live.to_json()), Some(live.clone()));
        assert_eq!(live.mapping().unwrap(), Mapping::default());
        assert_eq!(LiveMapping::from_json(&json!({"document": {}})), None);
    }

    #[test]
    fn a_mapping_reads_back_from_its_document() {
        for mapping in [Mapping::parse(FULL).unwrap(), Mapping::default()] {
            let document = mapping.document().to_string();
            assert_eq!(Mapping::parse(&document).unwrap(), mapping, "{document}");
        }
        let custom = Mapping::parse(r#"{"fields": [], "status": {"to": "customField:cf_s"}}"#).unwrap();
        assert_eq!(custom.document(), json!({"fields": [], "status": {"to": "customField:cf_s"}}));
    }

    #[test]
    fn the_catalogue_names_only_what_parse_accepts() {
        let catalogue = catalogue();
        for target in catalogue["targets"].as_array().unwrap() {
            let to = target["name"].as_str().unwrap();
            assert!(parse_target(to).is_ok(), "{to}");
        }
        assert_eq!(catalogue["targets"].as_array().unwrap().len(), STANDARD_FIELDS.len());
        for transform in catalogue["transforms"].as_array().unwrap() {
            assert!(parse_transform(transform.as_str().unwrap()).is_ok());
        }
        assert!(parse_target(catalogue["split_name"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn a_full_mapping_maps_every_kind_of_rule() {
        let mapping = Mapping::parse(FULL).unwrap();
        let input = data(json!({
            "id": "sm_1", "name": " Ada  King Lovelace ", "email": " ADA@Example.com ",
            "phone": "(555) 010-0199", "company": "Analytical Engines", "billing": {"plan": "pro"},
            "country": "gb", "do_not_disturb": "true", "status": "customer", "ignored": 1
        }));
        let created = mapping.apply(&input, Purpose::Create).unwrap();
        assert_eq!(
            Value::Object(created.fields),
            json!({
                "firstName": "Ada", "lastName": "King Lovelace", "email": "ada@example.com",
                "phone": "+15550100199", "companyName": "Analytical Engines", "country": "GB",
                "dnd": true, "source": "sightmill",
                "customFields": [{"id": "cf_plan", "fieldValue": "pro"}],
                "tags": ["status:customer"],
            })
        );
        assert_eq!(created.status_tag, StatusTag::Set("status:customer".into()));

        let updated = mapping.apply(&input, Purpose::Update).unwrap();
        assert!(!updated.fields.contains_key("companyName"), "companyName is create-only");
        assert!(!updated.fields.contains_key("tags"), "tags are never part of an update");
    }

    #[test]
    fn the_default_mapping_splits_names_and_passes_nulls_on_update() {
        let mapping = Mapping::default();
        let input = data(json!({"name": "Plato", "email": null, "status": "x"}));
        assert_eq!(
            Value::Object(mapping.apply(&input, Purpose::Update).unwrap().fields),
            json!({"firstName": "Plato", "lastName": null, "email": null})
        );
        assert_eq!(
            Value::Object(mapping.apply(&input, Purpose::Create).unwrap().fields),
            json!({"firstName": "Plato"})
        );
    }

    #[test]
    fn status_can_go_to_a_custom_field() {
        let mapping = Mapping::parse(r#"{"fields": [], "status": {"to": "customField:cf_status"}}"#).unwrap();
        let mapped = mapping.apply(&data(json!({"status": "lead"})), Purpose::Update).unwrap();
        assert_eq!(mapped.fields["customFields"], json!([{"id": "cf_status", "fieldValue": "lead"}]));
        assert_eq!(mapped.status_tag, StatusTag::Unchanged);
        let cleared = mapping.apply(&data(json!({"status": null})), Purpose::Update).unwrap();
        assert_eq!(cleared.fields["customFields"], json!([{"id": "cf_status", "fieldValue": ""}]));
    }

    fn definitions(plan_id: &str) -> Definitions {
        let answer = json!({"customFields": [
            {"id": plan_id, "name": "Plan", "fieldKey": "contact.plan", "dataType": "SINGLE_OPTIONS", "picklistOptions": ["Basic", "Pro"]},
            {"id": "f_score", "name": "Score", "fieldKey": "contact.score", "dataType": "NUMERICAL"},
            {"id": "f_stage", "name": "Stage", "fieldKey": "contact.stage", "dataType": "RADIO", "picklistOptions": ["Lead", "Customer"]},
        ]});
        Definitions::from_answer(&answer, 0).unwrap()
    }

    const BY_KEY: &str = r#"{
        "fields": [
            {"from": "plan", "to": "customField:contact.plan", "values": {"gold": "Pro"}},
            {"from": "score", "to": "customField:contact.score", "on_invalid": "omit"}
        ],
        "status": {"to": "customField:contact.stage", "values": {"active": "Customer"}}
    }"#;

    #[test]
    fn one_mapping_by_key_serves_locations_whose_ids_differ() {
        let mapping = Mapping::parse(BY_KEY).unwrap();
        assert!(mapping.names_custom_fields());
        assert_eq!(mapping.custom_references(), ["contact.plan", "contact.score", "contact.stage"]);
        let input = data(json!({"plan": "gold", "score": "12", "status": "active"}));
        for plan_id in ["id_in_a", "id_in_b"] {
            let resolved = mapping.resolve(&definitions(plan_id)).unwrap();
            let mapped = resolved.apply(&input, Purpose::Update).unwrap();
            assert_eq!(
                mapped.fields["customFields"],
                json!([
                    {"id": plan_id, "fieldValue": "Pro"},
                    {"id": "f_score", "fieldValue": 12},
                    {"id": "f_stage", "fieldValue": "Customer"},
                ])
            );
            assert_eq!(resolved.document(), mapping.document(), "the document names keys, not ids");
        }
        assert_eq!(Mapping::parse(&mapping.document().to_string()).unwrap(), mapping);
    }

    #[test]
    fn a_value_that_cannot_fit_parks_or_is_left_out_as_the_mapping_says() {
        let mapping = Mapping::parse(BY_KEY).unwrap().resolve(&definitions("p1")).unwrap();
        let parked = mapping.apply(&data(json!({"plan": "Platinum"})), Purpose::Update).unwrap_err();
        assert_eq!(parked.field, "plan");
        assert!(
            parked.problem.contains("`Platinum` is not one of its options (Basic, Pro)"),
            "{}",
            parked.problem
        );

        let mapped =
            mapping.apply(&data(json!({"plan": "basic", "score": "lots"})), Purpose::Update).unwrap();
        assert_eq!(mapped.fields["customFields"], json!([{"id": "p1", "fieldValue": "Basic"}]));
        assert_eq!(mapped.omitted.len(), 1);
        assert_eq!(
            mapped.omitted[0].to_string(),
            "field `score`: custom field `contact.score`: `lots` is not a number"
        );
    }

    #[test]
    fn the_location_fields_are_read_again_when_old_or_when_they_refuse_a_value() {
        let mapping = Mapping::parse(BY_KEY).unwrap();
        let known = definitions("p1"); // read at 0
        let minute = custom_fields::REREAD_AFTER_MS;
        let fits = data(json!({"plan": "Pro", "score": 3}));
        let option_gone = data(json!({"plan": "Enterprise"}));
        let table = [
            (&mapping, Some(&fits), minute - 1, false),
            (&mapping, Some(&option_gone), minute - 1, false),
            (&mapping, Some(&option_gone), minute, true),
            (&mapping, Some(&data(json!({"score": "lots"}))), minute, true),
            (&mapping, Some(&fits), minute, false),
            (&mapping, None, minute, false),
            (&mapping, Some(&fits), custom_fields::MAX_AGE_MS, true),
            (&Mapping::default(), Some(&fits), custom_fields::MAX_AGE_MS, false),
        ];
        for (mapping, input, now, expected) in table {
            assert_eq!(mapping.needs_fresh_fields(&known, input, now), expected, "{input:?} at {now}");
        }
        let lacking =
            Mapping::parse(r#"{"fields": [{"from": "a", "to": "customField:contact.nope"}]}"#).unwrap();
        assert!(lacking.needs_fresh_fields(&known, None, minute));
        assert!(!lacking.needs_fresh_fields(&known, None, minute - 1));
    }

    #[test]
    fn a_field_the_location_lacks_is_named() {
        let mapping =
            Mapping::parse(r#"{"fields": [{"from": "a", "to": "customField:contact.nope"}]}"#).unwrap();
        assert_eq!(
            mapping.resolve(&definitions("p1")).unwrap_err(),
            "custom field `contact.nope` is not defined in this location"
        );
        let twice = r#"{"fields": [{"from": "a", "to": "customField:p1"}, {"from": "b", "to": "customField:contact.plan"}]}"#;
        assert!(Mapping::parse(twice)
            .unwrap()
            .resolve(&definitions("p1"))
            .unwrap_err()
            .contains("two entries"));
        // Unresolved (the list could not be read): an id goes as it is, a key cannot.
        let unresolved = Mapping::parse(BY_KEY).unwrap();
        let error = unresolved.apply(&data(json!({"plan": "Pro"})), Purpose::Update).unwrap_err();
        assert!(error.problem.contains("locations/customFields.readonly"), "{}", error.problem);
        let by_id = Mapping::parse(r#"{"fields": [{"from": "a", "to": "customField:p1"}]}"#).unwrap();
        let sent = by_id.apply(&data(json!({"a": "anything"})), Purpose::Update).unwrap();
        assert_eq!(sent.fields["customFields"], json!([{"id": "p1", "fieldValue": "anything"}]));
    }

    #[test]
    fn a_status_tag_is_set_cleared_or_left_as_it_is() {
        let mapping =
            Mapping::parse(r#"{"fields": [], "status": {"to": "tag", "prefix": "status:"}}"#).unwrap();
        let tag = |input: Value| mapping.apply(&data(input), Purpose::Update).unwrap().status_tag;
        assert_eq!(tag(json!({"status": " lead "})), StatusTag::Set("status:lead".into()));
        assert_eq!(tag(json!({"status": null})), StatusTag::Cleared);
        assert_eq!(tag(json!({"status": " "})), StatusTag::Cleared);
        assert_eq!(tag(json!({"email": "a@b.co"})), StatusTag::Unchanged);
        assert_eq!(StatusTag::Unchanged.after(Some("status:lead".into())), Some("status:lead".into()));
        assert_eq!(StatusTag::Cleared.after(Some("status:lead".into())), None);
    }

    #[test]
    fn an_update_sends_null_only_to_fields_the_api_can_clear() {
        let mapping = Mapping::parse(
            r#"{"fields": [{"from": "email", "to": "email"}, {"from": "zip", "to": "postalCode"},
                {"from": "country", "to": "country"}, {"from": "do_not_disturb", "to": "dnd"}]}"#,
        )
        .unwrap();
        let input = data(json!({"email": null, "zip": null, "country": null, "do_not_disturb": null}));
        let updated = mapping.apply(&input, Purpose::Update).unwrap();
        assert_eq!(Value::Object(updated.fields), json!({"email": null}));
        let input = data(json!({"zip": "35061", "do_not_disturb": false}));
        let updated = mapping.apply(&input, Purpose::Update).unwrap();
        assert_eq!(Value::Object(updated.fields), json!({"postalCode": "35061", "dnd": false}));
    }

    #[test]
    fn a_status_the_mapping_does_not_send_is_never_read() {
        let input = data(json!({"name": "Ada", "status": {"code": "x"}}));
        let mapped = Mapping::default().apply(&input, Purpose::Update).unwrap();
        assert_eq!(mapped.status_tag, StatusTag::Unchanged);
        assert!(!mapped.fields.contains_key("customFields"));
    }

    #[test]
    fn bad_documents_name_the_entry_and_the_problem() {
        let table = [
            ("[]", "document", "not a mapping document"),
            (r#"{"fields": [], "extra": 1}"#, "document", "unknown field `extra`"),
            (r#"{"fields": [{"from": "a", "to": "nickname"}]}"#, "fields[0]", "unknown target `nickname`"),
            (
                r#"{"fields": [{"from": "a", "to": "email"}, {"from": "b", "to": "email"}]}"#,
                "fields[1]",
                "same field as fields[0]",
            ),
            (
                r#"{"fields": [{"from": "n", "to": "firstName+lastName"}, {"from": "b", "to": "lastName"}]}"#,
                "fields[1]",
                "same field as fields[0]",
            ),
            (r#"{"fields": [{"to": "email"}]}"#, "fields[0]", "needs `from`"),
            (r#"{"fields": [{"from": "a", "value": "b", "to": "email"}]}"#, "fields[0]", "not both"),
            (
                r#"{"fields": [{"from": "a", "to": "email", "transforms": ["shout"]}]}"#,
                "fields[0]",
                "unknown transform `shout`",
            ),
            (
                r#"{"fields": [{"from": "p", "to": "phone", "transforms": ["e164"]}]}"#,
                "fields[0]",
                "needs `default_country_code`",
            ),
            (
                r#"{"fields": [{"from": "a", "to": "customField:has space"}]}"#,
                "fields[0]",
                "not a custom field id",
            ),
            (r#"{"fields": [{"from": "a..b", "to": "city"}]}"#, "fields[0]", "dotted path"),
            (
                r#"{"fields": [{"from": "a", "to": "dnd", "transforms": ["trim"]}]}"#,
                "fields[0]",
                "takes no transforms",
            ),
            (r#"{"fields": [{"value": {"x": 1}, "to": "city"}]}"#, "fields[0]", "`value` must be"),
            (r#"{"fields": [], "status": {"to": "email"}}"#, "status", "must be `tag` or `customField:<id>`"),
            (r#"{"fields": [], "default_country_code": "+1"}"#, "default_country_code", "1-3 digits"),
            (
                r#"{"fields": [{"from": "a", "to": "email", "values": {}}]}"#,
                "fields[0]",
                "only to custom fields",
            ),
            (
                r#"{"fields": [{"from": "a", "to": "customField:x", "on_invalid": "drop"}]}"#,
                "fields[0]",
                "`park` or `omit`",
            ),
            (
                r#"{"fields": [{"from": "a", "to": "customField:x", "values": {"a": 1}}]}"#,
                "fields[0]",
                "`values.a`",
            ),
            (r#"{"fields": [], "status": {"to": "tag", "values": {}}}"#, "status", "only to a custom field"),
            (r#"{"fields": [], "actions": [{"when": "x"}]}"#, "actions[0]", "missing field"),
        ];
        for (document, entry, problem) in table {
            let error = Mapping::parse(document).unwrap_err();
            assert_eq!(error.entry, entry, "{document}");
            assert!(error.problem.contains(problem), "{document}: {}", error.problem);
            assert!(error.to_string().starts_with(&format!("mapping entry `{entry}`")));
        }
    }

    #[test]
    fn a_contact_that_cannot_be_mapped_is_refused_whole() {
        let mapping = Mapping::parse(FULL).unwrap();
        let table = [
            (json!({"phone": "call me"}), "phone"),
            (json!({"email": ["a"]}), "email"),
            (json!({"do_not_disturb": "maybe"}), "do_not_disturb"),
        ];
        for (input, field) in table {
            let error = mapping.apply(&data(input.clone()), Purpose::Create).unwrap_err();
            assert_eq!(error.field, field, "{input}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn any_contact_maps_or_is_refused(
            name in proptest::option::of(".{0,30}"),
            phone in proptest::option::of("[0-9+() -]{0,20}"),
            dnd in proptest::option::of(proptest::bool::ANY),
            plan in proptest::option::of(proptest::num::i64::ANY),
        ) {
            let mapping = Mapping::parse(FULL).unwrap();
            let input = data(json!({"name": name, "phone": phone, "do_not_disturb": dnd, "billing": {"plan": plan}}));
            for purpose in [Purpose::Create, Purpose::Update] {
                if let Ok(mapped) = mapping.apply(&input, purpose) {
                    if let Some(Value::String(phone)) = mapped.fields.get("phone") {
                        proptest::prop_assert!(phone.starts_with('+'));
                    }
                }
            }
        }

        #[test]
        fn any_document_parses_or_is_refused(document in ".{0,200}") {
            let _ = Mapping::parse(&document);
        }
    }
}
