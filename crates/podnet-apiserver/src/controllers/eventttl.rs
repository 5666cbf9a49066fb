//! Events expire an hour after they last happened, as the API server's event TTL does, so they do not
//! accumulate forever.

use std::sync::Arc;

use podnet_apimachinery::{object, resources, time};
use podnet_apistore::{ObjectKey, WatchEvent};

use super::{BoxFut, Controller};
use crate::registry::{Api, DeleteOptions};
use crate::util;

pub struct EventTtl;

pub const TTL_SECS: i64 = 3600;

impl Controller for EventTtl {
    fn name(&self) -> &'static str {
        "event-ttl"
    }

    fn watches(&self) -> Vec<String> {
        Vec::new()
    }

    fn keys(&self, _api: &Api, _ev: &WatchEvent) -> Vec<ObjectKey> {
        Vec::new()
    }

    /// One sweep per resync.
    fn all_keys(&self, _api: &Api) -> Vec<ObjectKey> {
        vec![ObjectKey::new("events", "", "sweep")]
    }

    fn reconcile<'a>(&'a self, api: &'a Arc<Api>, _key: &'a ObjectKey) -> BoxFut<'a> {
        Box::pin(async move {
            let events = resources::find("", "v1", "events").expect("served");
            let now = util::now_unix();
            for e in api.list_values(events, None) {
                let last = [
                    "lastTimestamp",
                    "eventTime",
                    "firstTimestamp",
                    "metadata.creationTimestamp",
                ]
                .iter()
                .find_map(|f| object::str_at(&e, f).and_then(time::parse_rfc3339));
                if last.is_some_and(|t| now - t > TTL_SECS) {
                    let ns = object::namespace(&e).to_string();
                    let name = object::name(&e).to_string();
                    match api
                        .delete(events, &ns, &name, &DeleteOptions::default())
                        .await
                    {
                        Ok(_) => {}
                        Err(err) if err.reason == "NotFound" => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            Ok(())
        })
    }
}
