//! warmlane's integration tests: real PDFs, real components, the real binary.

mod authoring;
mod budgets;
mod cli;
mod documents;
mod extraction;
mod fuzzing;
mod guests;
mod hostile;
mod kubernetes;
mod lanes;
mod limits;
mod loopback_http;
mod mcp;
mod metrics;
mod plugins;
mod proxy;
mod redis_server;
mod replicas;
mod rollout;
mod serve;
mod startup;
mod support;
mod telemetry;
mod tools;
mod uploads;
mod upstreams;
