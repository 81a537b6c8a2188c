//! A Contacts API client for one attempt at one location: it fetches the location's token first,
//! and when the API refuses that token (a token 401, not the `Version` 401) it renews it once and
//! sends the same request once more. The webhook path sends every planned request through it.

use worker::{Date, Env};

use super::contacts_client::ContactsClient;
use super::store::Store;
use super::tokens::{access_token, refresh_after_rejection, TokenError};
use crate::config::Config;
use crate::contacts_api::{Answer, ApiRequest};
use crate::secret::Secret;

pub struct AuthorizedClient<'a> {
    env: &'a Env,
    store: &'a Store,
    config: &'a Config,
    token: Secret,
    renewed: bool,
}

impl<'a> AuthorizedClient<'a> {
    /// Gets the token for `config.location_id`; fails as [`access_token`] does.
    pub async fn open(
        env: &'a Env,
        store: &'a Store,
        config: &'a Config,
    ) -> Result<AuthorizedClient<'a>, TokenError> {
        let token = access_token(env, store, &config.location_id, now_ms()).await?;
        Ok(AuthorizedClient {
            env,
            store,
            config,
            token,
            renewed: false,
        })
    }

    /// Sends `request`. After the first token 401 of this client the token is renewed and the
    /// request sent again; `Err` when that renewal fails. A second token 401 is returned as is.
    pub async fn send(&mut self, request: &ApiRequest) -> Result<Answer, TokenError> {
        let answer = self.client().send(request).await;
        if answer != Answer::TokenRejected || self.renewed {
            return Ok(answer);
        }
        self.renewed = true;
        self.token = refresh_after_rejection(
            self.env,
            self.store,
            &self.config.location_id,
            &self.token,
            now_ms(),
        )
        .await?;
        Ok(self.client().send(request).await)
    }

    fn client(&self) -> ContactsClient<'_> {
        ContactsClient {
            base_url: &self.config.api_base,
            token: &self.token,
            timeout_ms: self.config.api_timeout_ms,
        }
    }
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}
