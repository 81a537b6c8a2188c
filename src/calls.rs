//! The internal calls between the Worker and its two Durable Objects (core): every route a
//! Location ([`LocationCall`]) and the Directory ([`DirectoryCall`]) answer under [`INTERNAL`],
//! each with its method and path, and the JSON bodies that are not typed elsewhere. The shell's
//! stub (`shell::platform::object_stub`) sends a call value; each Durable Object's router parses
//! the request back with [`Call::route`] and matches on the value. So every path is written once,
//! here, and a caller cannot name a route its object does not answer.

use serde::{Deserialize, Serialize};

use crate::auth::envelope::Envelope;

/// The prefix of every internal route of both Durable Objects. The stub adds it; the public
/// router never forwards a path under it.
pub const INTERNAL: &str = "/internal";

/// The methods the internal routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    /// The method spelled `method` (upper case, as the platform gives it); `None` for one no
    /// internal route uses.
    pub fn parse(method: &str) -> Option<Verb> {
        [Verb::Get, Verb::Post, Verb::Put, Verb::Delete].into_iter().find(|verb| verb.as_str() == method)
    }
}

/// An internal call: its method and its path below [`INTERNAL`] (with its query), and the one
/// parser that reads a request's method and path back into the call.
pub trait Call: Sized {
    fn method(&self) -> Verb;
    /// The path below [`INTERNAL`], with the query when the call has one.
    fn path(&self) -> String;
    /// The call that `method` on `path` (below [`INTERNAL`], query included) names; `None` for
    /// any other.
    fn route(method: Verb, path: &str) -> Option<Self>;
}

/// The route below [`INTERNAL`] of a request's path and query; `None` when it is not internal.
pub fn below_internal(path_and_query: &str) -> Option<&str> {
    path_and_query.strip_prefix(INTERNAL)
}

/// The path's segments after its leading `/`, without the query.
fn segments(path: &str) -> Vec<&str> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    path.trim_start_matches('/').split('/').collect()
}

/// What a Location does with its webhooks not finished when its connection is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PendingPolicy {
    /// Refused with 409 `pending_events` while there are some (the default).
    #[default]
    Refuse,
    /// Discarded, then the connection is removed.
    Discard,
}

impl PendingPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingPolicy::Refuse => "refuse",
            PendingPolicy::Discard => "discard",
        }
    }

    /// The policy spelled `text` (`refuse` or `discard`).
    pub fn parse(text: &str) -> Option<PendingPolicy> {
        [PendingPolicy::Refuse, PendingPolicy::Discard].into_iter().find(|policy| policy.as_str() == text)
    }
}

/// The calls a Location's Durable Object answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationCall {
    /// `POST /accept` [`crate::sync::queue::Intake`]: accept a verified webhook (its reply).
    Accept,
    /// `POST /wake` (the cron, the default connection): work what is due (a `CronRun`).
    Wake,
    /// `POST /nudge` (the Directory's fan-out): work what is due, answer the queue
    /// ([`crate::connections::work::WorkReport`]).
    Nudge,
    /// `PUT /connection` [`Sealed`]: the named connection's record, from the Directory.
    StoreConnection,
    /// `DELETE /connection?pending=refuse|discard`: remove the connection (a missing or unknown
    /// `pending` refuses).
    RemoveConnection { pending: PendingPolicy },
    /// `POST /token` [`Envelope`]: the location's first OAuth tokens, sealed.
    InstallToken,
    /// `POST /read/...`: the read API's calls.
    Read(ReadCall),
}

/// The read API's calls to a Location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadCall {
    /// `POST /read/link` [`LinkQuery`]: the id-map record under a key.
    Link,
    /// `POST /read/version` [`VersionQuery`]: a contact's read version.
    Version,
    /// `POST /read/send` [`SendQuery`]: send a read with the location's token and pacing.
    Send,
}

impl ReadCall {
    fn name(self) -> &'static str {
        match self {
            ReadCall::Link => "link",
            ReadCall::Version => "version",
            ReadCall::Send => "send",
        }
    }

    fn parse(name: &str) -> Option<ReadCall> {
        [ReadCall::Link, ReadCall::Version, ReadCall::Send].into_iter().find(|call| call.name() == name)
    }
}

const ACCEPT: &str = "accept";
const WAKE: &str = "wake";
const NUDGE: &str = "nudge";
const CONNECTION: &str = "connection";
const TOKEN: &str = "token";
const READ: &str = "read";
const PENDING: &str = "pending";

impl Call for LocationCall {
    fn method(&self) -> Verb {
        match self {
            LocationCall::StoreConnection => Verb::Put,
            LocationCall::RemoveConnection { .. } => Verb::Delete,
            _ => Verb::Post,
        }
    }

    fn path(&self) -> String {
        match self {
            LocationCall::Accept => format!("/{ACCEPT}"),
            LocationCall::Wake => format!("/{WAKE}"),
            LocationCall::Nudge => format!("/{NUDGE}"),
            LocationCall::StoreConnection => format!("/{CONNECTION}"),
            LocationCall::RemoveConnection { pending } => {
                format!("/{CONNECTION}?{PENDING}={}", pending.as_str())
            }
            LocationCall::InstallToken => format!("/{TOKEN}"),
            LocationCall::Read(read) => format!("/{READ}/{}", read.name()),
        }
    }

    fn route(method: Verb, path: &str) -> Option<LocationCall> {
        Some(match (method, segments(path).as_slice()) {
            (Verb::Post, [ACCEPT]) => LocationCall::Accept,
            (Verb::Post, [WAKE]) => LocationCall::Wake,
            (Verb::Post, [NUDGE]) => LocationCall::Nudge,
            (Verb::Put, [CONNECTION]) => LocationCall::StoreConnection,
            (Verb::Delete, [CONNECTION]) => {
                let pending = crate::auth::install::query_param(path, PENDING);
                LocationCall::RemoveConnection {
                    pending: pending.as_deref().and_then(PendingPolicy::parse).unwrap_or_default(),
                }
            }
            (Verb::Post, [TOKEN]) => LocationCall::InstallToken,
            (Verb::Post, [READ, name]) => LocationCall::Read(ReadCall::parse(name)?),
            _ => return None,
        })
    }
}

/// The calls the Directory's Durable Object answers. The ids are the path's segments as sent;
/// the Directory checks them (400 `invalid_connection_id` and the like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryCall {
    /// `GET /connections/{id}/verify`: the sealed record, for the edge to verify webhooks with.
    Verify { id: String },
    /// `POST /agencies/{company}/access`: a company access token valid a while yet.
    AgencyAccess { company: String },
    /// `POST /agencies/{company}/install` [`Sealed`]: an agency's company token record.
    AgencyInstall { company: String },
    /// `POST /oauth/connections/{id}`: the app was installed on location `id`.
    EnsureOAuth { id: String },
    /// `POST /cron`: nudge the named connections with work due.
    Cron,
    /// `POST /work/{id}` [`crate::connections::work::WorkReport`]: a Location's queue.
    ReportWork { id: String },
    /// `GET /work`: the work record (tests, diagnosis).
    Work,
    /// `POST /invites/{nonce}/spend` [`InviteSpend`]: use an install link once.
    SpendInvite { nonce: String },
    /// `GET /usage`: what the Directory instance has cost since it started.
    Usage,
}

const CONNECTIONS: &str = "connections";
const VERIFY: &str = "verify";
const AGENCIES: &str = "agencies";
const ACCESS: &str = "access";
const INSTALL: &str = "install";
const OAUTH: &str = "oauth";
const CRON: &str = "cron";
const WORK: &str = "work";
const INVITES: &str = "invites";
const SPEND: &str = "spend";
const USAGE: &str = "usage";

impl Call for DirectoryCall {
    fn method(&self) -> Verb {
        match self {
            DirectoryCall::Verify { .. } | DirectoryCall::Work | DirectoryCall::Usage => Verb::Get,
            _ => Verb::Post,
        }
    }

    fn path(&self) -> String {
        match self {
            DirectoryCall::Verify { id } => format!("/{CONNECTIONS}/{id}/{VERIFY}"),
            DirectoryCall::AgencyAccess { company } => format!("/{AGENCIES}/{company}/{ACCESS}"),
            DirectoryCall::AgencyInstall { company } => format!("/{AGENCIES}/{company}/{INSTALL}"),
            DirectoryCall::EnsureOAuth { id } => format!("/{OAUTH}/{CONNECTIONS}/{id}"),
            DirectoryCall::Cron => format!("/{CRON}"),
            DirectoryCall::ReportWork { id } => format!("/{WORK}/{id}"),
            DirectoryCall::Work => format!("/{WORK}"),
            DirectoryCall::SpendInvite { nonce } => format!("/{INVITES}/{nonce}/{SPEND}"),
            DirectoryCall::Usage => format!("/{USAGE}"),
        }
    }

    fn route(method: Verb, path: &str) -> Option<DirectoryCall> {
        let owned = |text: &str| text.to_owned();
        Some(match (method, segments(path).as_slice()) {
            (Verb::Get, [CONNECTIONS, id, VERIFY]) => DirectoryCall::Verify { id: owned(id) },
            (Verb::Post, [AGENCIES, company, ACCESS]) => {
                DirectoryCall::AgencyAccess { company: owned(company) }
            }
            (Verb::Post, [AGENCIES, company, INSTALL]) => {
                DirectoryCall::AgencyInstall { company: owned(company) }
            }
            (Verb::Post, [OAUTH, CONNECTIONS, id]) => DirectoryCall::EnsureOAuth { id: owned(id) },
            (Verb::Post, [CRON]) => DirectoryCall::Cron,
            (Verb::Post, [WORK, id]) => DirectoryCall::ReportWork { id: owned(id) },
            (Verb::Get, [WORK]) => DirectoryCall::Work,
            (Verb::Post, [INVITES, nonce, SPEND]) => DirectoryCall::SpendInvite { nonce: owned(nonce) },
            (Verb::Get, [USAGE]) => DirectoryCall::Usage,
            _ => return None,
        })
    }
}

/// `{ "envelope" }`: a sealed record (a connection's, pushed to its Location; an agency's company
/// token record, handed to the Directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    pub envelope: Envelope,
}

/// `{ "expires_at_ms" }`: when the install link being spent expires.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct InviteSpend {
    pub expires_at_ms: i64,
}

/// [`ReadCall::Link`]'s question.
#[derive(Debug, Serialize, Deserialize)]
pub struct LinkQuery {
    pub key: String,
}

/// [`ReadCall::Version`]'s question.
#[derive(Debug, Serialize, Deserialize)]
pub struct VersionQuery {
    pub contact_id: String,
}

/// [`ReadCall::Send`]'s question: the call's path (as the read API's route built it), and who
/// asks (the read key's fingerprint).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendQuery {
    pub path: String,
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location_calls() -> Vec<LocationCall> {
        vec![
            LocationCall::Accept,
            LocationCall::Wake,
            LocationCall::Nudge,
            LocationCall::StoreConnection,
            LocationCall::RemoveConnection { pending: PendingPolicy::Refuse },
            LocationCall::RemoveConnection { pending: PendingPolicy::Discard },
            LocationCall::InstallToken,
            LocationCall::Read(ReadCall::Link),
            LocationCall::Read(ReadCall::Version),
            LocationCall::Read(ReadCall::Send),
        ]
    }

    fn directory_calls() -> Vec<DirectoryCall> {
        vec![
            DirectoryCall::Verify { id: "loc-a".into() },
            DirectoryCall::AgencyAccess { company: "co-1".into() },
            DirectoryCall::AgencyInstall { company: "co-1".into() },
            DirectoryCall::EnsureOAuth { id: "loc-a".into() },
            DirectoryCall::Cron,
            DirectoryCall::ReportWork { id: "loc-a".into() },
            DirectoryCall::Work,
            DirectoryCall::SpendInvite { nonce: "n0nce_-".into() },
            DirectoryCall::Usage,
        ]
    }

    fn round_trips<C: Call + Clone + PartialEq + std::fmt::Debug>(calls: Vec<C>) {
        for call in calls {
            assert_eq!(C::route(call.method(), &call.path()), Some(call.clone()));
            let url = format!("{INTERNAL}{}", call.path());
            assert_eq!(below_internal(&url), Some(call.path().as_str()));
        }
    }

    #[test]
    fn every_location_call_routes_back_to_itself() {
        round_trips(location_calls());
    }

    #[test]
    fn every_directory_call_routes_back_to_itself() {
        round_trips(directory_calls());
    }

    #[test]
    fn the_paths_are_the_ones_the_objects_answered() {
        let location: Vec<String> = location_calls().iter().map(|call| call.path()).collect();
        assert_eq!(
            location,
            [
                "/accept",
                "/wake",
                "/nudge",
                "/connection",
                "/connection?pending=refuse",
                "/connection?pending=discard",
                "/token",
                "/read/link",
                "/read/version",
                "/read/send"
            ]
        );
        let directory: Vec<String> = directory_calls().iter().map(|call| call.path()).collect();
        assert_eq!(
            directory,
            [
                "/connections/loc-a/verify",
                "/agencies/co-1/access",
                "/agencies/co-1/install",
                "/oauth/connections/loc-a",
                "/cron",
                "/work/loc-a",
                "/work",
                "/invites/n0nce_-/spend",
                "/usage"
            ]
        );
    }

    #[test]
    fn unknown_paths_and_methods_route_nowhere() {
        for (method, path) in [
            (Verb::Post, "/"),
            (Verb::Post, ""),
            (Verb::Post, "/kv"),
            (Verb::Get, "/accept"),
            (Verb::Post, "/accept/more"),
            (Verb::Post, "/connection"),
            (Verb::Get, "/read/link"),
            (Verb::Post, "/read/other"),
            (Verb::Post, "/read"),
            (Verb::Post, "/admin/status"),
        ] {
            assert_eq!(LocationCall::route(method, path), None, "{method:?} {path}");
        }
        for (method, path) in [
            (Verb::Get, "/"),
            (Verb::Post, "/usage"),
            (Verb::Post, "/connections/loc-a/verify"),
            (Verb::Get, "/connections/loc-a"),
            (Verb::Get, "/connections/loc-a/verify/more"),
            (Verb::Post, "/work"),
            (Verb::Post, "/work/a/b"),
            (Verb::Delete, "/cron"),
            (Verb::Get, "/admin/connections"),
        ] {
            assert_eq!(DirectoryCall::route(method, path), None, "{method:?} {path}");
        }
        assert_eq!(below_internal("/admin/connections"), None);
        assert_eq!(Verb::parse("PATCH"), None);
        assert_eq!(Verb::parse("DELETE"), Some(Verb::Delete));
    }

    #[test]
    fn a_removal_refuses_unless_told_to_discard() {
        let removal = |path| LocationCall::route(Verb::Delete, path);
        let refuse = Some(LocationCall::RemoveConnection { pending: PendingPolicy::Refuse });
        assert_eq!(removal("/connection"), refuse);
        assert_eq!(removal("/connection?pending=keep"), refuse);
        assert_eq!(
            removal("/connection?other=1&pending=discard"),
            Some(LocationCall::RemoveConnection { pending: PendingPolicy::Discard })
        );
    }

    #[test]
    fn a_query_does_not_change_other_routes() {
        assert_eq!(LocationCall::route(Verb::Post, "/wake?x=1"), Some(LocationCall::Wake));
        assert_eq!(DirectoryCall::route(Verb::Get, "/work?x=1"), Some(DirectoryCall::Work));
    }
}
