//! See the network: the node's HTTP API ([`api`], served by `quarry node --http`, with the
//! tip watcher [`watch`] behind its event stream) and the web explorer ([`web`], `quarry
//! explorer`), a page that reads several nodes' HTTP APIs from the browser. The explorer
//! server itself knows nodes only by their API URLs.

pub mod api;
pub mod watch;
pub mod web;
