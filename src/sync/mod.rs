//! Sync planning: what the location's writer does with an accepted event. [`plan`] turns an
//! event and the id maps into Contacts API calls (with the operator's [`mapping`]) and reads each
//! answer; [`retry`] decides what a failure means and paces calls; [`records`] and [`wire`] are
//! the records the writer keeps; [`queue`] states every transition of a webhook record once, as
//! the rows to write; [`report`] is what is answered and logged; [`metrics`] are the counts per
//! minute and hour that the operator console charts. The mapping names custom fields by id or key
//! and converts values by their type ([`custom_fields`], [`phone`]); its rules beyond fields are
//! [`action_rules`], and [`actions`] says when they fire and how each is sent once.

pub mod action_rules;
pub mod actions;
pub mod contact_lookup;
pub mod custom_fields;
pub mod mapping;
pub mod metrics;
pub mod phone;
pub mod plan;
pub mod queue;
pub mod records;
pub mod report;
pub mod retry;
pub mod wire;
