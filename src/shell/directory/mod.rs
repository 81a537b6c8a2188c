//! The Directory Durable Object (`Directory`, SQLite-backed, one object named `directory`): the
//! one writer of named connections' records and of agencies' company tokens. The operator routes
//! under `/admin/connections` and `/admin/agencies` ([`operator`]), the OAuth callback and the
//! cron reach it through [`crate::shell::platform::object_stub`]; each change of a record is
//! pushed, sealed, to that location's Durable Object (`PUT /connection`) before it is kept here,
//! so that a change the Location did not take is not made at all. The edge reads a connection's
//! record to verify a webhook (`GET /connections/{id}/verify`), a Location asks for its agency's
//! company token (`POST /agencies/{company}/access`, [`agencies`]), an install spends its
//! operator's install link (`POST /invites/{nonce}/spend`), the Locations report when their
//! queues fill and empty ([`work`]), and each cron run asks it to nudge the named
//! connections with work due ([`fan_out`]). Every internal route is under `/internal`; the edge's
//! copy of the records is published in KV ([`edge_copy`]).

mod agencies;
mod db;
mod edge_copy;
mod fan_out;
mod operator;
mod work;

use std::cell::Cell;
use std::rc::Rc;

use futures_util::lock::Mutex;

use serde_json::{json, Value};
use worker::{console_error, durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use crate::auth::envelope::{KeyRing, NONCE_LEN};
use crate::connections::{unknown_connection, Connection, ConnectionId, TokenSource};
use crate::refusal::Refusal;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, settings};
use db::{Db, Presence, Write};

#[durable_object]
pub struct Directory {
    env: Env,
    storage: worker::Storage,
    db: Db,
    /// A change of records under way (they are changed one at a time: each awaits its Location).
    changing: Mutex<()>,
    /// A company token renewal under way (one at a time: each spends a refresh token).
    renewing: Mutex<()>,
    requests: Cell<u64>,
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        let db = Db::open(state.storage().sql()).expect("the directory's tables can be created");
        fan_out::swept_when_new(&db);
        Directory {
            env,
            storage: state.storage(),
            db,
            changing: Mutex::new(()),
            renewing: Mutex::new(()),
            requests: Cell::new(0),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.requests.set(self.requests.get() + 1);
        let path = req.path();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // The Worker's internal routes (under `/internal`) and the operator's (under `/admin/`):
        // the public router forwards only the latter.
        let answer = match (req.method(), segments.as_slice()) {
            (Method::Get, ["internal", "connections", id, "verify"]) => self.verify(id),
            (Method::Post, ["internal", "agencies", company, "access"]) => {
                agencies::access(self, company).await
            }
            (Method::Post, ["internal", "agencies", company, "install"]) => {
                agencies::install(self, company, req).await
            }
            (Method::Post, ["internal", "oauth", "connections", id]) => self.ensure_oauth(id).await,
            (Method::Post, ["internal", "cron"]) => fan_out::start(self).await,
            (Method::Post, ["internal", "work", id]) => work::report(self, id, req).await,
            (Method::Get, ["internal", "work"]) => work::record(self),
            (Method::Post, ["internal", "invites", nonce, "spend"]) => self.spend_invite(nonce, req).await,
            (Method::Get, ["internal", "usage"]) => Ok((200, self.usage())),
            (_, ["admin", "connections" | "agencies", ..]) => operator::handle(self, req).await,
            _ => Err(Refusal::not_found("no such route in the directory")),
        };
        match answer {
            Ok((status, body)) => respond::json(status, &body),
            Err(refusal) => refusal.response(),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.requests.set(self.requests.get() + 1);
        if let Err(refusal) = fan_out::carry_on(self).await {
            console_error!("{}", json!({"msg": "cron: the fan-out stopped", "error": refusal.message}));
        }
        Response::ok("")
    }
}

/// A status and a JSON body, or a refusal.
type Answer = std::result::Result<(u16, Value), Refusal>;

impl Directory {
    /// What this instance has cost since it started: requests (alarms included) and rows.
    fn usage(&self) -> Value {
        self.db.usage(self.requests.get())
    }

    /// `POST /invites/{nonce}/spend` `{ "expires_at_ms" }`: an install link is used once (409
    /// `install_link_used` the second time).
    async fn spend_invite(&self, nonce: &str, mut req: Request) -> Answer {
        let body: Value = serde_json::from_str(&req.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        let expires_at_ms = body["expires_at_ms"]
            .as_i64()
            .ok_or_else(|| Refusal::bad_request("invalid_body", "expected { expires_at_ms }"))?;
        match self.db.spend_invite(nonce, expires_at_ms, now_ms()).map_err(storage)? {
            true => Ok((200, json!({ "spent": true }))),
            false => Err(Refusal::conflict("install_link_used", "this install link was used already")),
        }
    }

    /// `GET /connections/{id}/verify`: the sealed record, for the edge to verify webhooks with.
    fn verify(&self, id: &str) -> Answer {
        let id = ConnectionId::parse(id)?;
        match self.db.connection(id.as_str()).map_err(storage)? {
            Presence::Live(envelope) => Ok((200, json!({ "envelope": envelope }))),
            Presence::Removed | Presence::Absent => Err(unknown_connection()),
        }
    }

    /// The keys records are sealed under (500 `misconfigured` naming the setting without them).
    fn keys(&self) -> std::result::Result<Rc<KeyRing>, Refusal> {
        match settings(&self.env).encryption_keys() {
            Ok(keys) => Ok(keys),
            Err(crate::config::ConfigError::Missing(name)) => Err(Refusal::misconfigured(format!(
                "the setting `{name}` is required for named connections (their records are sealed with it)"
            ))),
            Err(error) => Err(Refusal::misconfigured(error)),
        }
    }

    /// The live connection `id`, opened (404 `unknown_connection`).
    fn live(&self, keys: &KeyRing, id: &ConnectionId) -> std::result::Result<Connection, Refusal> {
        match self.db.connection(id.as_str()).map_err(storage)? {
            Presence::Live(envelope) => open(keys, id, &envelope),
            Presence::Removed | Presence::Absent => Err(unknown_connection()),
        }
    }

    /// Whether `id` names a live connection.
    fn is_live(&self, id: &str) -> std::result::Result<bool, Refusal> {
        Ok(matches!(self.db.connection(id).map_err(storage)?, Presence::Live(_)))
    }

    /// Every live connection, opened.
    fn all_live(&self, keys: &KeyRing) -> std::result::Result<Vec<Connection>, Refusal> {
        let rows = self.db.live().map_err(storage)?;
        rows.iter().map(|row| open(keys, &ConnectionId::parse(&row.id)?, &row.envelope)).collect()
    }

    /// Makes `next` the record: pushed to its Location first (503 `storage_unavailable` when it
    /// does not take it, and nothing is kept), published for the edge (KV), then written here.
    /// Should the publishing or the write here fail, the Location and KV are given back what they
    /// had (`previous`), so that nothing is half-done.
    async fn commit(
        &self,
        keys: &KeyRing,
        previous: Option<&Connection>,
        next: &Connection,
    ) -> std::result::Result<(), Refusal> {
        let envelope = seal(keys, next)?;
        push(&self.env, next.id.as_str(), &json!({ "envelope": envelope })).await?;
        let published = edge_copy::publish(&self.env, &next.id, &envelope).await;
        let agency = match &next.token {
            TokenSource::Agency { company_id } => Some(company_id.as_str()),
            _ => None,
        };
        let write = Write {
            id: next.id.as_str(),
            envelope: &envelope,
            paused: next.paused,
            agency,
            now_ms: now_ms(),
        };
        let written = published.and_then(|()| self.db.put_connection(&write).map_err(storage));
        let Err(refusal) = written else {
            return Ok(());
        };
        let undone = match previous {
            Some(previous) => match seal(keys, previous) {
                Ok(envelope) => {
                    let pushed = push(&self.env, next.id.as_str(), &json!({ "envelope": envelope })).await;
                    let republished = edge_copy::publish(&self.env, &next.id, &envelope).await;
                    pushed.and(republished)
                }
                Err(refusal) => Err(refusal),
            },
            None => {
                let forgotten = forget(&self.env, next.id.as_str()).await;
                forgotten.and(edge_copy::withdraw(&self.env, &next.id).await)
            }
        };
        if let Err(undo) = undone {
            console_error!(
                "{}",
                json!({"msg": "a connection change was not kept here and could not be undone in its location or KV",
                       "alert": true, "connection": next.id, "error": undo.message})
            );
        }
        Err(refusal)
    }

    /// `POST /oauth/connections/{id}`: the app was installed on location `id` (not the default
    /// one). Creates the connection with token kind `oauth` and no signing secret, or keeps it
    /// when it is one already (its new tokens are the Location's); 409 `connection_exists` when it
    /// is a connection of another kind.
    async fn ensure_oauth(&self, id: &str) -> Answer {
        let id = ConnectionId::parse(id)?;
        let keys = self.keys()?;
        let _turn = self.changing.lock().await;
        match self.db.connection(id.as_str()).map_err(storage)? {
            Presence::Live(envelope) => {
                let existing = open(&keys, &id, &envelope)?;
                if existing.token != TokenSource::OAuth {
                    return Err(Refusal::conflict("connection_exists", format!(
                            "the connection `{id}` takes its token from `{}`; PATCH /admin/connections/{id} to token kind oauth first",
                            existing.token.kind()
                        ),
                    ));
                }
                Ok((200, json!({ "connection": existing.view(now_ms()), "created": false })))
            }
            Presence::Removed | Presence::Absent => {
                let connection = Connection {
                    id,
                    label: None,
                    created_at_ms: now_ms(),
                    paused: false,
                    token: TokenSource::OAuth,
                    secrets: Vec::new(),
                };
                self.commit(&keys, None, &connection).await?;
                Ok((200, json!({ "connection": connection.view(now_ms()), "created": true })))
            }
        }
    }
}

/// Opens a stored record (500 when it does not open with the deployment's keys).
fn open(
    keys: &KeyRing,
    id: &ConnectionId,
    envelope: &crate::auth::envelope::Envelope,
) -> std::result::Result<Connection, Refusal> {
    Connection::open(keys, id, envelope).map_err(|error| {
        Refusal::misconfigured(format!(
            "the record of connection `{id}` does not open with TOKEN_ENCRYPTION_KEYS ({error}); list the key it was sealed with"
        ))
    })
}

/// Seals a record under the current key with a fresh nonce.
fn seal(
    keys: &KeyRing,
    connection: &Connection,
) -> std::result::Result<crate::auth::envelope::Envelope, Refusal> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| unavailable("no randomness for the record's nonce"))?;
    Ok(connection.seal(keys, nonce))
}

/// `PUT /connection` on the location's Durable Object; 503 unless it answers 200.
async fn push(env: &Env, id: &str, body: &Value) -> std::result::Result<(), Refusal> {
    let answer = location_call(env, id, Method::Put, "/connection", Some(body.to_string())).await?;
    match answer {
        (200, _) => Ok(()),
        (status, _) => Err(not_taken(id, status)),
    }
}

/// Removes a connection that was pushed but not kept here (best effort; its events discarded).
async fn forget(env: &Env, id: &str) -> std::result::Result<(), Refusal> {
    match location_call(env, id, Method::Delete, "/connection?pending=discard", None).await? {
        (200, _) => Ok(()),
        (status, _) => Err(not_taken(id, status)),
    }
}

/// One call to location `id`'s Durable Object: its status and JSON body (read to its end).
async fn location_call(
    env: &Env,
    id: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> std::result::Result<(u16, Value), Refusal> {
    let reached = async { ObjectStub::open(env, id)?.ask(method, path, body).await };
    reached.await.map_err(|error| {
        console_error!(
            "{}",
            json!({"msg": "location not reached", "connection": id, "path": path, "error": error.to_string()})
        );
        Refusal::storage_unavailable(format!(
            "the location of connection `{id}` could not be reached; nothing was changed, try again"
        ))
    })
}

fn not_taken(id: &str, status: u16) -> Refusal {
    console_error!(
        "{}",
        json!({"msg": "location did not take the change", "connection": id, "status": status})
    );
    Refusal::storage_unavailable(format!("the location of connection `{id}` did not take the change (HTTP {status}); nothing was changed, try again"),
    )
}

fn storage(error: String) -> Refusal {
    console_error!("{}", json!({"msg": "directory storage failed", "error": error}));
    Refusal::storage_unavailable("the directory could not read or write its records; try again")
}

fn unavailable(message: &str) -> Refusal {
    Refusal::unavailable("unavailable", format!("{message}; try again"))
}
