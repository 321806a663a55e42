//! The flags every node-starting command shares (`#[command(flatten)]`), and how they
//! resolve against the settings into a [`NodePlan`], with every problem listed at once.

use clap::Args;

use super::{NodePlan, Role};
use crate::cache::CacheTarget;
use crate::cluster::QueueTarget;
use crate::config::Settings;
use crate::data::DataSource;
use crate::redis_link::RedisUrl;

/// Where a node's data, cache and work come from. Numbers are taken as text and checked
/// with the command's other options, so one run reports every problem. Global, so that
/// commands with subcommands (`technic cache warm --data …`) take them after either.
#[derive(Debug, Clone, Default, Args)]
pub struct NodeArgs {
    /// `synthetic`, `polygon` or `csv:DIR`; a chain such as `polygon,csv:DIR` serves what
    /// the first cannot from the next (data.fallback is appended). Default: data.source.
    #[arg(long, global = true, value_name = "SOURCE")]
    pub data: Option<String>,
    /// Cache: none | memory | redis://HOST:PORT | redis-cluster://HOST:PORT[,HOST:PORT...]
    /// (default: the cluster's Redis with --redis, else cache.url).
    #[arg(long, global = true, value_name = "URL")]
    pub cache: Option<String>,
    /// The cluster's Redis (redis://HOST:PORT or redis-cluster://HOST:PORT[,...]): the
    /// work queue shared with every `technic worker`, the node registry, the scan history,
    /// and the cache unless --cache says otherwise.
    #[arg(long, global = true, value_name = "URL")]
    pub redis: Option<String>,
    /// Local worker actors (default: cluster.workers, 0 there meaning one per core). With
    /// --redis, 0 makes this process a coordinator only.
    #[arg(long, global = true, value_name = "N")]
    pub workers: Option<String>,
}

impl NodeArgs {
    /// The node `role` needs, from these flags over `settings`; every problem at once,
    /// spelled with the flag's name.
    pub fn plan(&self, settings: &Settings, role: Role) -> Result<NodePlan, Vec<String>> {
        let mut problems = Vec::new();
        self.reject_unused(role, &mut problems);
        let spec = self.data.as_deref().unwrap_or(&settings.data.source);
        let sources = DataSource::parse_chain(spec, &settings.data.fallback).unwrap_or_else(|e| {
            problems.extend(e.problems.into_iter().map(|p| format!("--data: {p}")));
            vec![DataSource::Synthetic]
        });
        // --redis, else cluster.redis_url (TECHNIC_CLUSTER__REDIS_URL); a snapshot has no cluster.
        let configured = Some(settings.cluster.redis_url.trim())
            .filter(|u| !u.is_empty() && !role.provider_only());
        let (redis, redis_from) = match self.redis.as_deref() {
            Some(url) => (Some(url.trim()), "--redis"),
            None => (configured, "cluster.redis_url"),
        };
        let queue = match redis {
            Some(url) => match RedisUrl::parse(url) {
                Ok(_) => QueueTarget::Redis(url.to_string()),
                Err(_) => {
                    problems.push(format!(
                        "{redis_from}: {:?} is not a redis://HOST:PORT or redis-cluster://HOST:PORT[,HOST:PORT...] URL",
                        crate::redis_link::redact(url)
                    ));
                    QueueTarget::InProcess
                }
            },
            None if role == Role::Worker => {
                problems.push(
                    "--redis: a worker joins a cluster through its Redis: give --redis URL (or set cluster.redis_url)".into(),
                );
                QueueTarget::InProcess
            }
            None => QueueTarget::InProcess,
        };
        let cache = self.cache_target(settings, role, redis, &mut problems);
        let workers = self.workers(settings, role, &queue, &mut problems);
        if problems.is_empty() {
            Ok(NodePlan {
                role,
                sources,
                cache,
                queue,
                workers,
            })
        } else {
            Err(problems)
        }
    }

    /// Flags a role has no use for are an error, not silently ignored.
    fn reject_unused(&self, role: Role, problems: &mut Vec<String>) {
        let unused: &[(&str, bool)] = match role {
            Role::Scan | Role::Serve | Role::Worker => &[],
            Role::Cache => &[("--workers", self.workers.is_some())],
            Role::Snapshot | Role::Train => &[
                ("--cache", self.cache.is_some()),
                ("--redis", self.redis.is_some()),
                ("--workers", self.workers.is_some()),
            ],
        };
        for (flag, given) in unused {
            if *given {
                problems.push(format!("{flag}: not used by `technic {}`", role.command()));
            }
        }
    }

    fn cache_target(
        &self,
        settings: &Settings,
        role: Role,
        redis: Option<&str>,
        problems: &mut Vec<String>,
    ) -> CacheTarget {
        if role.provider_only() {
            return CacheTarget::None;
        }
        let explicit = self.cache.as_deref().or(redis);
        match explicit
            .unwrap_or(&settings.cache.url)
            .parse::<CacheTarget>()
        {
            // A one-shot scan never reads its in-process cache again: filling it would
            // only cost time. The configured memory default serves long-running
            // processes; a memory cache for a scan needs an explicit --cache memory.
            Ok(CacheTarget::Memory) if explicit.is_none() && role == Role::Scan => {
                CacheTarget::None
            }
            Ok(t) => t,
            // A cache defaulting to a malformed --redis: that one is already reported.
            Err(_) if self.cache.is_none() && redis.is_some() => CacheTarget::None,
            Err(e) => {
                problems.push(format!("--cache: {e}"));
                CacheTarget::None
            }
        }
    }

    fn workers(
        &self,
        settings: &Settings,
        role: Role,
        queue: &QueueTarget,
        problems: &mut Vec<String>,
    ) -> usize {
        let Some(text) = self.workers.as_deref() else {
            return settings.local_workers();
        };
        if matches!(role, Role::Cache) || role.provider_only() {
            return 0; // refused as unused above
        }
        match text.trim().parse::<usize>() {
            Ok(0) if role == Role::Scan && *queue == QueueTarget::InProcess => {
                problems.push(
                    "--workers: a local scan needs at least 1 worker (0 means coordinator only, with --redis)"
                        .into(),
                );
                1
            }
            Ok(n) if n > Settings::MAX_WORKERS => {
                problems.push(format!(
                    "--workers: {n} is above the limit of {} worker actors per process",
                    Settings::MAX_WORKERS
                ));
                1
            }
            Ok(n) => n,
            Err(_) => {
                problems.push(format!("--workers: {text:?} is not a valid number"));
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_redis_url_is_the_default_of_redis() {
        let mut settings = Settings::defaults();
        settings.cluster.redis_url = "redis://127.0.0.1:6399".into();
        let p = NodeArgs::default().plan(&settings, Role::Worker).unwrap();
        assert_eq!(p.queue, QueueTarget::Redis("redis://127.0.0.1:6399".into()));
        // The flag wins; a snapshot has no cluster.
        let flag = NodeArgs {
            redis: Some("redis://127.0.0.1:6400".into()),
            ..NodeArgs::default()
        };
        let p = flag.plan(&settings, Role::Worker).unwrap();
        assert_eq!(p.queue, QueueTarget::Redis("redis://127.0.0.1:6400".into()));
        let p = NodeArgs::default().plan(&settings, Role::Snapshot).unwrap();
        assert_eq!(p.queue, QueueTarget::InProcess);
        settings.cluster.redis_url = "http://x".into();
        let problems = NodeArgs::default()
            .plan(&settings, Role::Worker)
            .unwrap_err();
        assert!(
            problems[0].starts_with("cluster.redis_url: "),
            "{problems:?}"
        );
    }
}
