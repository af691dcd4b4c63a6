//! The health monitor: one pass looks at every stack from one list of Coolify's services and
//! one probe per routed stack (bounded concurrency, each with its timeout), lets
//! `cfa_core::monitor` say what it observes and `cfa_core::incidents` what becomes an incident,
//! and writes only what changed: the record's health fields, the tracks of streams not at rest,
//! incidents opened and resolved, and the grouped messages owed to each channel (the outbox).
//! A pass where nothing changed writes nothing.
//!
//! Coolify not answering is one platform incident (`coolify_unreachable`), and no stack is
//! judged or flipped for it. PocketBase not answering stops the pass with an error (nothing can
//! be recorded; the caller's local spool is the way out).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use cfa_alerts::{AlertMessage, Delivery, Outbox};
use cfa_core::incidents::{
    Condition, GroupedMessage, IncidentKind, IncidentSubject, IncidentTrack, Notification,
    Observation, TrackState, group_notifications, judge_capacity, resolve_removed, step,
};
use cfa_core::monitor::{
    HostSighting, RESTART_LOOP_WINDOW, StackSighting, check_stack, event_observations,
    record_health,
};
use cfa_core::{HealthVerdict, ProbeOutcome};
use cfa_pocketbase::StoredTrack;
use futures::StreamExt as _;

use super::incident_store::{subject_from_json, timestamp, track_from_json, track_key};
use super::monitor_tracks::Change;
use super::*;

/// What one monitor pass saw and wrote.
#[derive(Debug, Default)]
pub struct MonitorReport {
    pub stacks_checked: usize,
    /// Our HTTP probes of routed stacks.
    pub probes: usize,
    /// Coolify calls (one list of services, none when it did not answer).
    pub coolify_calls: usize,
    /// Records whose health fields changed.
    pub record_writes: usize,
    /// Tracks created, changed or deleted.
    pub track_writes: usize,
    /// Incidents opened and resolved, by key.
    pub opened: Vec<String>,
    pub resolved: Vec<String>,
    /// Grouped messages queued (once per channel each).
    pub messages: Vec<GroupedMessage>,
    pub outbox_writes: usize,
    /// Host agents' events folded in (each marked seen).
    pub events_seen: usize,
    /// Why Coolify could not be read, when it could not.
    pub coolify_unreachable: Option<String>,
    /// How many stacks got each verdict.
    pub verdicts: BTreeMap<HealthVerdict, usize>,
    /// Objects listed in the bucket by the backup check (0: no check this pass).
    pub backup_objects_listed: usize,
}

impl MonitorReport {
    /// PocketBase writes this pass made (0 when nothing changed).
    pub fn writes(&self) -> usize {
        self.record_writes
            + self.track_writes
            + self.opened.len()
            + self.resolved.len()
            + self.outbox_writes
            + self.events_seen
    }
}

/// One observation to fold into its track.
pub(super) struct Seen {
    pub(super) subject: IncidentSubject,
    pub(super) kind: IncidentKind,
    pub(super) observation: Observation,
}

/// PocketBase writes of one pass in flight at once (a storm opens thousands of incidents).
const WRITES_IN_FLIGHT: usize = 16;

/// How long before a `die` with exit code 137 an `oom` of the same container explains it.
const OOM_BEFORE_DIE_NS: i64 = 60_000_000_000;

/// A monitor pass, or why there was none.
#[derive(Debug)]
pub enum MonitorPass {
    Ran(MonitorReport),
    /// Another controller holds the lease (and monitors).
    LeaseHeld {
        holder: String,
        remaining: Duration,
    },
}

impl Engine {
    /// One monitor pass under the controller lease, taken or renewed for `holder`: one process
    /// monitors at a time, so no incident is opened twice.
    pub async fn monitor_under_lease(
        &self,
        holder: &str,
        lease_ttl: Duration,
    ) -> Result<MonitorPass, EngineError> {
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let lease = self
            .inner
            .pocketbase
            .lease_acquire(super::CONTROLLER_LEASE, holder, lease_ttl)
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        self.note_takeover(&lease, holder);
        if !lease.acquired {
            return Ok(MonitorPass::LeaseHeld {
                holder: lease.holder.clone(),
                remaining: lease.remaining(),
            });
        }
        self.monitor_pass().await.map(MonitorPass::Ran)
    }

    /// One monitor pass over every stack.
    pub async fn monitor_pass(&self) -> Result<MonitorReport, EngineError> {
        let now = SystemTime::now();
        let settings = &self.inner.settings;
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let pocketbase = &self.inner.pocketbase;
        let records = pocketbase
            .stack_list_all(&StackFilter::default(), true)
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        let stored = pocketbase
            .track_list_all()
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        let mut report = MonitorReport { coolify_calls: 1, ..MonitorReport::default() };
        // What the host agents reported since the last pass (OOM kills, exits), by stack.
        let events = pocketbase
            .host_events_unseen()
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        let mut sightings: HashMap<(String, String), Vec<HostSighting>> = HashMap::new();
        for event in &events {
            let container = event.container_name.clone();
            let sighting = match (event.kind.as_str(), event.exit_code) {
                ("oom", _) => HostSighting::OomKilled { container },
                ("died", Some(exit_code)) => {
                    // Docker's `die` can come seconds after its `oom`, in a later batch.
                    let after_oom = exit_code == 137
                        && pocketbase
                            .host_oom_between(
                                &container,
                                event.at_ns - OOM_BEFORE_DIE_NS,
                                event.at_ns,
                            )
                            .await
                            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
                    HostSighting::Died { container, exit_code, after_oom }
                }
                _ => continue,
            };
            sightings
                .entry((event.tenant.clone(), event.stack.clone()))
                .or_default()
                .push(sighting);
        }
        // Streams with a track (stored, or cached from an earlier pass): a clear or empty
        // observation of any other stream leaves it at rest and sends nothing, so it is not
        // kept (a fleet of healthy stacks then costs no per-stream memory).
        let mut tracked: HashSet<String> = stored.iter().map(|track| track.key.clone()).collect();
        tracked.extend(
            self.inner
                .tracks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .keys()
                .cloned(),
        );
        let matters = |subject: &IncidentSubject, kind: IncidentKind, observation: &Observation| {
            observation.condition == Condition::Holds || tracked.contains(&track_key(subject, kind))
        };
        // Streams with an open OOM incident, read once: only their stacks need the host events'
        // word on whether they restarted since the kill.
        let open_oom: HashSet<&str> = stored
            .iter()
            .filter(|track| track.kind == IncidentKind::OomKilled.as_str())
            .filter(|track| {
                track_from_json(IncidentKind::OomKilled, &track.track)
                    .is_some_and(|track| track.open_incident().is_some())
            })
            .map(|track| track.key.as_str())
            .collect();
        let mut seen = Vec::new();
        let mut verdicts: HashMap<String, Option<HealthVerdict>> = HashMap::new();
        match self.inner.coolify.list_services().await {
            Err(error) => {
                let detail = format!(
                    "Coolify's API does not answer: {}",
                    error.to_string().lines().next().unwrap_or_default()
                );
                report.coolify_unreachable = Some(detail.clone());
                seen.push(Seen {
                    subject: IncidentSubject::Platform,
                    kind: IncidentKind::CoolifyUnreachable,
                    observation: Observation::holds(detail),
                });
                // The host agents do not need Coolify: their OOM kills still count.
                for record in &records {
                    let Some(tenant) = record.tenant.as_deref() else { continue };
                    let key = (tenant.slug.clone(), record.stack_name.clone());
                    let Some(found) = sightings.get(&key) else { continue };
                    let subject = stack_subject(&tenant.slug, record);
                    for (kind, observation) in
                        event_observations(found, record.status, false, false)
                    {
                        seen.push(Seen { subject: subject.clone(), kind, observation });
                    }
                }
            }
            Ok(services) => {
                seen.push(Seen {
                    subject: IncidentSubject::Platform,
                    kind: IncidentKind::CoolifyUnreachable,
                    observation: Observation::clear(),
                });
                // Services with our marker that no record claims (past or within their grace:
                // the controller removes them; until then they are an incident).
                let (orphans, _) = super::drift::classify(&records, &services);
                let orphaned: HashSet<String> =
                    orphans.iter().map(|orphan| orphan.service_uuid.clone()).collect();
                for orphan in &orphans {
                    seen.push(Seen {
                        subject: IncidentSubject::CoolifyService {
                            uuid: orphan.service_uuid.clone(),
                        },
                        kind: IncidentKind::OrphanService,
                        observation: Observation::holds(format!(
                            "service {} carries our marker for {}/{} ({}) but no record claims it",
                            orphan.service_uuid, orphan.tenant, orphan.stack, orphan.status
                        )),
                    });
                }
                for track in
                    stored.iter().filter(|track| track.kind == IncidentKind::OrphanService.as_str())
                {
                    let Some(subject) = subject_from_json(&track.subject) else { continue };
                    if let IncidentSubject::CoolifyService { uuid } = &subject
                        && !orphaned.contains(uuid)
                    {
                        let kind = IncidentKind::OrphanService;
                        seen.push(Seen { subject, kind, observation: Observation::clear() });
                    }
                }
                // Each configured server's reservations against its capacity: no Coolify call.
                for capacity in self.configured_capacities(&records) {
                    seen.push(Seen {
                        subject: IncidentSubject::Server { uuid: capacity.id.clone() },
                        kind: IncidentKind::CapacityLow,
                        observation: judge_capacity(&capacity, &settings.monitor.capacity),
                    });
                }
                let statuses: HashMap<&str, &str> = services
                    .iter()
                    .map(|service| (service.uuid.as_str(), service.status.as_str()))
                    .collect();
                let probes = self.probe_routed(&records).await;
                report.probes = probes.len();
                for record in &records {
                    let Some(tenant) = record.tenant.as_deref() else { continue };
                    let probe =
                        probes.get(&record.id).cloned().unwrap_or(ProbeOutcome::NotApplicable);
                    let coolify_status = record
                        .coolify_service_uuid
                        .as_deref()
                        .filter(|uuid| !uuid.is_empty())
                        .and_then(|uuid| statuses.get(uuid).copied());
                    let deploying_for = Duration::try_from(
                        jiff::Timestamp::now().duration_since(record.updated_at),
                    )
                    .unwrap_or(Duration::ZERO);
                    let key = (tenant.slug.clone(), record.stack_name.clone());
                    let found = sightings.get(&key).map_or(&[][..], Vec::as_slice);
                    // Crashes are counted (one query) for a stack whose containers crashed
                    // since the last pass, or whose restart loop is being tracked (it stays
                    // open until fewer than the limit remain in the window); the rest cannot
                    // be in a loop.
                    let crashed = found.iter().any(|sighting| {
                        matches!(sighting, HostSighting::Died { exit_code, .. } if !matches!(exit_code, 0 | 143))
                    });
                    let looping = tracked.contains(&track_key(
                        &stack_subject(&tenant.slug, record),
                        IncidentKind::RestartLoop,
                    ));
                    let recent_crashes = if crashed || looping {
                        let since = jiff::Timestamp::now().as_nanosecond()
                            - i128::from(RESTART_LOOP_WINDOW.as_secs()) * 1_000_000_000;
                        pocketbase
                            .host_crashes_since(
                                &tenant.slug,
                                &record.stack_name,
                                i64::try_from(since).unwrap_or(0),
                            )
                            .await
                            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?
                    } else {
                        0
                    };
                    let check = check_stack(&StackSighting {
                        record_status: record.status,
                        error_message: record.error_message.as_deref(),
                        coolify_status,
                        probe: &probe,
                        deploying_for,
                        stuck_after: settings.monitor.stuck_after,
                        recent_crashes,
                    });
                    report.stacks_checked += 1;
                    let verdict = check.judgement.as_ref().map(|judgement| judgement.verdict);
                    if let Some(verdict) = verdict {
                        *report.verdicts.entry(verdict).or_default() += 1;
                    }
                    verdicts.insert(record.id.clone(), verdict);
                    let subject = stack_subject(&tenant.slug, record);
                    let healthy = verdict == Some(HealthVerdict::Healthy);
                    let recovered = healthy
                        && self
                            .recovered_from_oom(&open_oom, &subject, &tenant.slug, record)
                            .await?;
                    let from_host = event_observations(found, record.status, healthy, recovered);
                    for (kind, observation) in check.observations.into_iter().chain(from_host) {
                        if matters(&subject, kind, &observation) {
                            seen.push(Seen { subject: subject.clone(), kind, observation });
                        }
                    }
                }
            }
        }

        // A lease taken over from a controller that stopped renewing it: one pass holds, the
        // next clears (the platform has a controller again), so it opens and resolves once.
        let lease_lost =
            self.inner.lease_lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        seen.push(Seen {
            subject: IncidentSubject::Platform,
            kind: IncidentKind::ControllerLeaseLost,
            observation: lease_lost.map_or_else(Observation::clear, Observation::holds),
        });
        let coolify_answers = report.coolify_unreachable.is_none();
        let backups = self.backup_observations(&records, coolify_answers, now, &mut report).await;
        seen.extend(backups);

        // Decide everything first (pure), queue the messages, then write the state: a crash in
        // between sends a message twice rather than never.
        seen.retain(|seen| matters(&seen.subject, seen.kind, &seen.observation));
        let mut notifications: Vec<(IncidentSubject, Notification)> = Vec::new();
        let mut stored: HashMap<String, StoredTrack> =
            stored.into_iter().map(|track| (track.key.clone(), track)).collect();
        let mut firing: HashMap<String, String> = HashMap::new();
        let mut stepped = Vec::new();
        for Seen { subject, kind, observation } in seen {
            let key = track_key(&subject, kind);
            let kept = stored.remove(&key);
            let stored_track = kept.as_ref().and_then(|kept| track_from_json(kind, &kept.track));
            let cached = self.cached_track(&key, stored_track.as_ref());
            let old =
                cached.or_else(|| stored_track.clone()).unwrap_or_else(|| IncidentTrack::new(kind));
            let (new, due) = step(old.clone(), &observation, &settings.monitor.policies, now);
            if let (IncidentSubject::Stack { record_id, .. }, TrackState::Firing(open)) =
                (&subject, &new.state)
                && matches!(kind, IncidentKind::Unhealthy | IncidentKind::RestartLoop)
            {
                let detail = open.detail.clone().unwrap_or_else(|| kind.title().to_owned());
                firing.entry(record_id.clone()).or_insert(detail);
            }
            notifications
                .extend(due.into_iter().map(|notification| (subject.clone(), notification)));
            stepped.push((subject, kind, key, kept, stored_track, old, new));
        }
        // Tracks of stacks whose record is gone: their incidents resolve as removed. Tracks of
        // stacks not looked at this pass (Coolify away) stay as they are.
        let present: HashSet<&str> = records.iter().map(|record| record.id.as_str()).collect();
        let mut gone_tracks = Vec::new();
        for (_, gone) in stored {
            let Some(subject) = subject_from_json(&gone.subject) else { continue };
            let IncidentSubject::Stack { record_id, .. } = &subject else { continue };
            if present.contains(record_id.as_str()) {
                continue;
            }
            let Ok(kind) = IncidentKind::parse(&gone.kind) else { continue };
            let track =
                track_from_json(kind, &gone.track).unwrap_or_else(|| IncidentTrack::new(kind));
            let open_key = track.open_incident_key(&subject);
            if let Some(notification) = resolve_removed(track, now) {
                notifications.push((subject.clone(), notification));
            }
            gone_tracks.push((gone, open_key));
        }

        report.messages = group_notifications(notifications, settings.monitor.listed_per_message);
        self.queue_messages(&report.messages, now, &mut report.outbox_writes).await?;

        // Only changed streams write; a storm's thousands of them go WRITES_IN_FLIGHT at a time.
        let changed = stepped.into_iter().map(
            |(subject, kind, key, kept, stored_track, old, new)| async move {
                let change = Change {
                    subject: &subject,
                    kind,
                    kept: kept.as_ref(),
                    stored: stored_track.as_ref(),
                    old: &old,
                    new: &new,
                };
                let (stored_after, written) = self.keep_track(change, now).await?;
                self.cache_track(key, stored_after, new);
                Ok::<MonitorReport, EngineError>(written)
            },
        );
        let mut writes = futures::stream::iter(changed).buffer_unordered(WRITES_IN_FLIGHT);
        while let Some(written) = writes.next().await {
            let written = written?;
            report.track_writes += written.track_writes;
            report.opened.extend(written.opened);
            report.resolved.extend(written.resolved);
        }
        drop(writes);
        report.opened.sort();
        report.resolved.sort();
        for event in &events {
            pocketbase
                .host_event_seen(&event.id)
                .await
                .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
            report.events_seen += 1;
        }
        for (gone, open_key) in gone_tracks {
            if let Some(open_key) = open_key {
                self.resolve_incident(&open_key, now, &mut report).await?;
            }
            pocketbase
                .track_delete(&gone.id)
                .await
                .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
            report.track_writes += 1;
        }

        let patches: Vec<(&AgentStack, StackPatch)> = records
            .iter()
            .filter_map(|record| {
                let verdict = verdicts.get(&record.id).copied().flatten();
                let firing = firing.get(&record.id).map(String::as_str);
                let health =
                    record_health(record.status, record.error_message.as_deref(), verdict, firing)?;
                let patch = StackPatch {
                    status: Some(health.status),
                    error_message: Some(health.error_message),
                    last_health_check: Some(timestamp(now)),
                    ..StackPatch::default()
                };
                Some((record, patch))
            })
            .collect();
        let updates = patches.iter().map(|(record, patch)| async move {
            match pocketbase.stack_update_if(&record.id, record.updated_at, patch).await {
                Ok(_) => Ok(1),
                // A tenant's request or the controller came first: the next pass judges again.
                Err(error) if error.kind == PocketBaseErrorKind::Stale => Ok(0),
                Err(error) => Err(error),
            }
        });
        let mut updates = futures::stream::iter(updates).buffer_unordered(WRITES_IN_FLIGHT);
        while let Some(written) = updates.next().await {
            report.record_writes +=
                written.map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        }

        Ok(report)
    }

    /// Whether a stack with an open OOM incident has been restarted since its last kill (the
    /// host agent saw it start). True when no OOM incident is open.
    async fn recovered_from_oom(
        &self,
        open_oom: &HashSet<&str>,
        subject: &IncidentSubject,
        tenant: &str,
        record: &AgentStack,
    ) -> Result<bool, EngineError> {
        if open_oom.is_empty()
            || !open_oom.contains(track_key(subject, IncidentKind::OomKilled).as_str())
        {
            return Ok(true);
        }
        let all = Subject { tenant: "*".to_owned(), stack: "*".to_owned() };
        let failed = |error| all.pocketbase(Step::RecordRunning, error);
        let pocketbase = &self.inner.pocketbase;
        let stack = &record.stack_name;
        let Some(killed) =
            pocketbase.host_event_latest(tenant, stack, "oom").await.map_err(failed)?
        else {
            return Ok(true);
        };
        let started = pocketbase
            .host_event_latest(tenant, stack, "started")
            .await
            .map_err(|error| all.pocketbase(Step::RecordRunning, error))?;
        // The kill came from a host agent, so its restart will too: Coolify's status alone
        // (stale for a status run) never says the killed container is back.
        Ok(started.is_some_and(|started| started > killed))
    }

    /// Every configured server's capacity with what the records place on it reserved.
    fn configured_capacities(&self, records: &[AgentStack]) -> Vec<cfa_core::ServerCapacity> {
        let placed: Vec<RecordedLimits> = records
            .iter()
            .filter_map(|record| {
                record.resource_limits.as_ref().and_then(RecordedLimits::from_json)
            })
            .collect();
        self.inner
            .settings
            .servers
            .iter()
            .map(|(uuid, server)| {
                let mut capacity = server.capacity(uuid);
                for recorded in placed.iter().filter(|recorded| &recorded.server_uuid == uuid) {
                    capacity.reserve(recorded.limits, &recorded.images);
                }
                capacity
            })
            .collect()
    }

    /// Queues every message once per configured channel (idempotent by message id).
    async fn queue_messages(
        &self,
        messages: &[GroupedMessage],
        now: SystemTime,
        writes: &mut usize,
    ) -> Result<(), EngineError> {
        let outbox = crate::PocketBaseOutbox::new(self.inner.pocketbase.clone());
        for (index, message) in messages.iter().enumerate() {
            tracing::info!(title = %message.title(), "alert");
            let payload = AlertMessage::from_grouped(message);
            // One millisecond apart, so a channel sends them in the order they were decided.
            let created = now + Duration::from_millis(u64::try_from(index).unwrap_or(0));
            for channel in &self.inner.settings.monitor.channels {
                let delivery = Delivery::new(channel, payload.clone(), created);
                outbox.enqueue(delivery).await.map_err(|error| EngineError::Alerts {
                    detail: cfa_alerts::error_chain(&error),
                })?;
                *writes += 1;
            }
        }
        Ok(())
    }

    /// Probes every stack that has a URL and should serve, `monitor.concurrency` at a time:
    /// record id -> outcome.
    async fn probe_routed(&self, records: &[AgentStack]) -> HashMap<String, ProbeOutcome> {
        use futures::StreamExt;
        let settings = &self.inner.settings;
        let routed: Vec<(&str, &str)> = records
            .iter()
            .filter(|record| matches!(record.status, StackStatus::Running | StackStatus::Error))
            .filter_map(|record| {
                let domain = record.domain.as_deref().filter(|domain| !domain.is_empty())?;
                Some((record.id.as_str(), domain))
            })
            .collect();
        futures::stream::iter(routed)
            .map(|(id, domain)| async move {
                (
                    id.to_owned(),
                    crate::probe::probe(&self.inner.http, &settings.probe, domain).await,
                )
            })
            .buffer_unordered(settings.monitor.concurrency.max(1))
            .collect()
            .await
    }
}

pub(super) fn stack_subject(tenant_slug: &str, record: &AgentStack) -> IncidentSubject {
    IncidentSubject::Stack {
        tenant_slug: tenant_slug.to_owned(),
        stack_name: record.stack_name.clone(),
        record_id: record.id.clone(),
    }
}
