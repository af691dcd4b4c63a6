//! The running bot: update intake (long polling or webhook), per-chat handling, pacing of sends,
//! and graceful shutdown.
//!
//! Design notes:
//! - Each update runs in its own task, bounded by `MAX_IN_FLIGHT`; a per-chat async lock keeps
//!   one chat's messages in order while chats proceed in parallel.
//! - Every Router or Telegram failure ends in a log line (status, chat id, never text) and, for
//!   the Router, an apology to the user; nothing here can stop the process except a refused
//!   token.
//! - Shutdown stops intake first, gives in-flight replies until `SHUTDOWN_GRACE`, confirms the
//!   handled updates to Telegram, and returns: the process exits well inside Docker's 10 s.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::config::{ChatAllowList, Settings, UpdateMode};
use crate::conversation::{ChatHistory, Incoming, classify, split_for_telegram};
use crate::health::{Health, http_routes, lock};
use crate::router::{ChatMessage, RetryPolicy, Role, RouterClient};
use crate::telegram::{Message, TelegramClient, TelegramError, Update};

/// Updates handled at once; further ones wait (long polling) or hold their webhook request.
pub const MAX_IN_FLIGHT: u32 = 32;
/// Chats whose history is kept; beyond this the least recently used idle chats are forgotten.
pub const MAX_REMEMBERED_CHATS: usize = 5_000;
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(25);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);
const SEND_ATTEMPTS: u32 = 4;
/// Longest wait we accept from a Telegram 429 before giving up on that message.
const MAX_TELEGRAM_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Telegram's guidance: about one message a second per chat, 20 a minute per group, 30 a
/// second overall.
const PRIVATE_CHAT_INTERVAL: Duration = Duration::from_secs(1);
const GROUP_CHAT_INTERVAL: Duration = Duration::from_secs(3);
const GLOBAL_SEND_INTERVAL: Duration = Duration::from_millis(34);

pub const HELP_TEXT: &str = "Write me a message and I will answer.\n\n/reset forgets our conversation so far\n/help shows this text";
pub const START_TEXT: &str = "Hello! Write me a message and I will answer.\n\n/reset forgets our conversation so far\n/help shows this text";
pub const RESET_TEXT: &str = "Done: I have forgotten our conversation.";
pub const APOLOGY_TEXT: &str = "Sorry, I cannot answer right now. Please try again in a minute.";
pub const NOT_TEXT_TEXT: &str = "Sorry, I can only read text messages.";

/// Why the bot stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on HEALTH_LISTEN {address}\nhint: choose a free port")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("telegram refused the bot token\nhint: check TELEGRAM_BOT_TOKEN with @BotFather")]
    TokenRefused {
        #[source]
        source: TelegramError,
    },
    #[error("cannot set the webhook\nhint: check WEBHOOK_URL (https, port 443, 80, 88 or 8443)")]
    Webhook {
        #[source]
        source: TelegramError,
    },
    #[error("cannot build the HTTP client")]
    HttpClient {
        #[source]
        source: reqwest::Error,
    },
}

/// The error and its causes on one line (safe to log: no error here holds a URL or content).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.replace('\n', "; ")
}

/// Spacing of sends per chat and overall.
#[derive(Debug, Default)]
struct SendPacer {
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    next_send_per_chat: HashMap<i64, Instant>,
    next_send_overall: Option<Instant>,
}

impl SendPacer {
    /// Waits until this chat may receive a message, and books the slot.
    async fn wait_turn(&self, chat_id: i64) {
        let slot = {
            let mut state = lock(&self.state);
            let now = Instant::now();
            if state.next_send_per_chat.len() > 1_000 {
                state.next_send_per_chat.retain(|_, next| *next > now);
            }
            let chat_next = state.next_send_per_chat.get(&chat_id).copied().unwrap_or(now);
            let slot = now.max(chat_next).max(state.next_send_overall.unwrap_or(now));
            let interval = if chat_id < 0 { GROUP_CHAT_INTERVAL } else { PRIVATE_CHAT_INTERVAL };
            state.next_send_per_chat.insert(chat_id, slot + interval);
            state.next_send_overall = Some(slot + GLOBAL_SEND_INTERVAL);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    /// Holds this chat back after a 429 with `retry_after`.
    fn hold(&self, chat_id: i64, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = lock(&self.state);
        let next = state.next_send_per_chat.entry(chat_id).or_insert(until);
        *next = (*next).max(until);
    }
}

#[derive(Debug)]
struct ChatEntry {
    history: Arc<tokio::sync::Mutex<ChatHistory>>,
    last_used: Instant,
}

/// Handles updates.
#[derive(Debug)]
pub struct Bot {
    telegram: TelegramClient,
    router: RouterClient,
    health: Arc<Health>,
    system_prompt: String,
    allowed_chats: ChatAllowList,
    history_turns: usize,
    bot_username: OnceLock<String>,
    chats: Mutex<HashMap<i64, ChatEntry>>,
    pacer: SendPacer,
    in_flight: Arc<Semaphore>,
}

impl Bot {
    /// Runs `update` in its own task once a slot is free.
    pub(crate) async fn dispatch(self: &Arc<Self>, update: Update) {
        let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
            return;
        };
        let bot = Arc::clone(self);
        tokio::spawn(async move {
            bot.handle_update(update).await;
            drop(permit);
        });
    }

    async fn handle_update(&self, update: Update) {
        let Some(message) = update.message else {
            tracing::debug!(update_id = update.update_id, "skipped an update without a message");
            return;
        };
        self.handle_message(update.update_id, message).await;
    }

    async fn handle_message(&self, update_id: i64, message: Message) {
        let chat_id = message.chat.id;
        if !self.allowed_chats.allows(chat_id) {
            tracing::info!(
                update_id,
                chat_id,
                "ignored a message from a chat not in ALLOWED_CHAT_IDS"
            );
            return;
        }
        let Some(text) = message.text.as_deref() else {
            // In groups, service messages (joins, pins) have no text: answering them is noise.
            if chat_id > 0 {
                self.send_and_log(chat_id, NOT_TEXT_TEXT).await;
            }
            return;
        };
        match classify(text, self.bot_username.get().map(String::as_str)) {
            Incoming::Start => self.send_and_log(chat_id, START_TEXT).await,
            Incoming::Help => self.send_and_log(chat_id, HELP_TEXT).await,
            // In a group, an unknown command is most likely another bot's.
            Incoming::UnknownCommand if chat_id > 0 => self.send_and_log(chat_id, HELP_TEXT).await,
            Incoming::UnknownCommand | Incoming::ForAnotherBot => {}
            Incoming::Reset => {
                let history = self.chat_history(chat_id);
                history.lock().await.clear();
                tracing::info!(update_id, chat_id, "history cleared");
                self.send_and_log(chat_id, RESET_TEXT).await;
            }
            Incoming::Chat("") => {}
            Incoming::Chat(user_text) => self.answer(update_id, chat_id, user_text).await,
        }
    }

    async fn answer(&self, update_id: i64, chat_id: i64, user_text: &str) {
        let history = self.chat_history(chat_id);
        // Held until the answer is sent: one chat's messages are answered in order.
        let mut history = history.lock().await;
        let mut messages = Vec::with_capacity(2 + 2 * history.len());
        messages.push(ChatMessage { role: Role::System, content: &self.system_prompt });
        for turn in history.turns() {
            messages.push(ChatMessage { role: Role::User, content: &turn.user_text });
            messages.push(ChatMessage { role: Role::Assistant, content: &turn.assistant_text });
        }
        messages.push(ChatMessage { role: Role::User, content: user_text });
        let started = Instant::now();
        let completion = self.router.complete(&messages).await;
        drop(messages);
        let router_ms = started.elapsed().as_millis() as u64;
        match completion {
            Ok(completion) => {
                self.health.router_answered();
                history.record(user_text, &completion.text);
                let pieces = split_for_telegram(&completion.text);
                let mut sent_pieces = 0;
                for piece in &pieces {
                    match self.send_text(chat_id, piece).await {
                        Ok(()) => sent_pieces += 1,
                        Err(error) => {
                            tracing::warn!(update_id, chat_id, error = %error_chain(&error), "could not send an answer");
                            break;
                        }
                    }
                }
                tracing::info!(
                    update_id,
                    chat_id,
                    question_chars = user_text.chars().count(),
                    answer_chars = completion.text.chars().count(),
                    pieces = pieces.len(),
                    sent_pieces,
                    router_attempts = completion.attempts,
                    router_ms,
                    "answered"
                );
            }
            Err(failure) => {
                tracing::warn!(
                    update_id,
                    chat_id,
                    router_attempts = failure.attempts,
                    router_ms,
                    error = %error_chain(&failure),
                    "router failed; sending an apology"
                );
                self.send_and_log(chat_id, APOLOGY_TEXT).await;
            }
        }
    }

    fn chat_history(&self, chat_id: i64) -> Arc<tokio::sync::Mutex<ChatHistory>> {
        let mut chats = lock(&self.chats);
        let now = Instant::now();
        if !chats.contains_key(&chat_id) && chats.len() >= MAX_REMEMBERED_CHATS {
            forget_idle_chats(&mut chats);
        }
        let entry = chats.entry(chat_id).or_insert_with(|| ChatEntry {
            history: Arc::new(tokio::sync::Mutex::new(ChatHistory::new(self.history_turns))),
            last_used: now,
        });
        entry.last_used = now;
        Arc::clone(&entry.history)
    }

    async fn send_and_log(&self, chat_id: i64, text: &str) {
        if let Err(error) = self.send_text(chat_id, text).await {
            tracing::warn!(chat_id, error = %error_chain(&error), "could not send a message");
        }
    }

    /// Sends one message, keeping to the pacing and honouring 429 `retry_after`.
    async fn send_text(&self, chat_id: i64, text: &str) -> Result<(), TelegramError> {
        let mut attempt = 1;
        loop {
            self.pacer.wait_turn(chat_id).await;
            match self.telegram.send_message(chat_id, text).await {
                Ok(()) => {
                    self.health.telegram_answered();
                    return Ok(());
                }
                Err(TelegramError::TooManyRequests { retry_after_seconds, .. })
                    if attempt < SEND_ATTEMPTS
                        && Duration::from_secs(retry_after_seconds) <= MAX_TELEGRAM_RETRY_AFTER =>
                {
                    tracing::warn!(
                        chat_id,
                        retry_after_seconds,
                        "telegram asked to slow down; waiting"
                    );
                    self.pacer.hold(chat_id, Duration::from_secs(retry_after_seconds.max(1)));
                }
                Err(error) if error.is_transient() && attempt < SEND_ATTEMPTS => {
                    tracing::warn!(chat_id, attempt, error = %error_chain(&error), "sending failed, retrying");
                    self.pacer.hold(chat_id, Duration::from_secs(u64::from(attempt)));
                }
                Err(error) => return Err(error),
            }
            attempt += 1;
        }
    }

    /// Waits for in-flight updates, up to `grace`; returns how many were still running.
    async fn drain(&self, grace: Duration) -> u32 {
        match tokio::time::timeout(grace, self.in_flight.acquire_many(MAX_IN_FLIGHT)).await {
            Ok(_) => 0,
            Err(_) => MAX_IN_FLIGHT - self.in_flight.available_permits() as u32,
        }
    }
}

/// Forgets the least recently used tenth of the chats nobody is being answered in.
fn forget_idle_chats(chats: &mut HashMap<i64, ChatEntry>) {
    let mut idle: Vec<(Instant, i64)> = chats
        .iter()
        .filter(|(_, entry)| Arc::strong_count(&entry.history) == 1)
        .map(|(chat_id, entry)| (entry.last_used, *chat_id))
        .collect();
    idle.sort_unstable();
    let forget = (MAX_REMEMBERED_CHATS / 10).max(1);
    for (_, chat_id) in idle.into_iter().take(forget) {
        chats.remove(&chat_id);
    }
}

/// Runs the bot until `shutdown` resolves (SIGTERM in the binary), then stops gracefully.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| RunError::HttpClient { source })?;
    let telegram =
        TelegramClient::new(http.clone(), &settings.telegram_api_url, &settings.telegram_bot_token);
    let router = RouterClient::new(
        http,
        &settings.router_base_url,
        settings.router_api_key.clone(),
        &settings.router_model,
        settings.router_timeout,
        RetryPolicy::default(),
    );
    let health = Arc::new(Health::new(telegram.clone(), router.clone()));
    let bot = Arc::new(Bot {
        telegram: telegram.clone(),
        router,
        health: Arc::clone(&health),
        system_prompt: settings.system_prompt.clone(),
        allowed_chats: settings.allowed_chats.clone(),
        history_turns: settings.history_turns,
        bot_username: OnceLock::new(),
        chats: Mutex::new(HashMap::new()),
        pacer: SendPacer::default(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
    });

    let (stop_sender, stop_receiver) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_sender.send(true);
    });

    let listener = tokio::net::TcpListener::bind(settings.health_listen)
        .await
        .map_err(|source| RunError::Listen { address: settings.health_listen, source })?;
    let webhook = match &settings.update_mode {
        UpdateMode::LongPolling => None,
        UpdateMode::Webhook { url, secret } => Some((url.path().to_owned(), secret.clone())),
    };
    let routes = http_routes(Arc::clone(&health), Arc::clone(&bot), webhook);
    let mut server_stop = stop_receiver.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, routes)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(error = %error_chain(&error), "health server stopped");
        }
    });
    tracing::info!(
        listen = %settings.health_listen,
        mode = match settings.update_mode { UpdateMode::LongPolling => "long-polling", UpdateMode::Webhook { .. } => "webhook" },
        history_turns = settings.history_turns,
        allow_list = match &settings.allowed_chats { ChatAllowList::Everyone => 0, ChatAllowList::Only(ids) => ids.len() },
        version = env!("CARGO_PKG_VERSION"),
        "telegram-bot starting"
    );

    let mut stop = stop_receiver.clone();
    let outcome = async {
        let Some(identity) = learn_identity(&telegram, &mut stop).await? else {
            return Ok(None);
        };
        let _ = bot.bot_username.set(identity.username.clone().unwrap_or_default());
        health.identity_known();
        tracing::info!(bot_id = identity.id, username = identity.username.as_deref().unwrap_or(""), "connected to telegram");
        match &settings.update_mode {
            UpdateMode::LongPolling => {
                if let Err(error) = telegram.delete_webhook().await {
                    tracing::warn!(error = %error_chain(&error), "could not remove a webhook before polling");
                }
                poll_updates(&telegram, &bot, &health, &mut stop).await.map(Some)
            }
            UpdateMode::Webhook { url, secret } => {
                telegram
                    .set_webhook(url.as_str(), secret)
                    .await
                    .map_err(|source| RunError::Webhook { source })?;
                tracing::info!(path = url.path(), "webhook set; waiting for updates");
                let _ = stop.wait_for(|stop| *stop).await;
                Ok(None)
            }
        }
    }
    .await;

    // Intake has stopped (or never started): let in-flight replies finish, within the grace.
    let still_running = bot.drain(SHUTDOWN_GRACE).await;
    if still_running > 0 {
        tracing::warn!(still_running, "shutdown grace over; dropping unfinished replies");
    }
    let confirmed_offset = match &outcome {
        Ok(Some(offset)) => *offset,
        _ => None,
    };
    if let Some(offset) = confirmed_offset {
        // Confirms handled updates so a restart does not answer them twice.
        let confirm = telegram.get_updates(Some(offset), Duration::ZERO, 1);
        if tokio::time::timeout(Duration::from_millis(1500), confirm).await.is_err() {
            tracing::warn!("could not confirm handled updates before exit");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    tracing::info!("telegram-bot stopped");
    outcome.map(drop)
}

/// Calls getMe until it works; `None` if shutdown came first.
async fn learn_identity(
    telegram: &TelegramClient,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<crate::telegram::BotUser>, RunError> {
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return Ok(None),
            result = telegram.get_me() => result,
        };
        match result {
            Ok(identity) => return Ok(Some(identity)),
            Err(source @ TelegramError::Unauthorized { .. }) => {
                return Err(RunError::TokenRefused { source });
            }
            Err(error) => {
                failures += 1;
                let wait = retry_wait(&error, failures);
                tracing::warn!(error = %error_chain(&error), retry_in_ms = wait.as_millis() as u64, "telegram not reachable yet");
                if sleep_or_stop(wait, stop).await {
                    return Ok(None);
                }
            }
        }
    }
}

/// Long-polls until shutdown; returns the offset that confirms every dispatched update.
async fn poll_updates(
    telegram: &TelegramClient,
    bot: &Arc<Bot>,
    health: &Health,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<i64>, RunError> {
    let mut offset: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return Ok(offset),
            result = telegram.get_updates(offset, LONG_POLL_TIMEOUT, 100) => result,
        };
        match result {
            Ok(batch) => {
                failures = 0;
                health.telegram_answered();
                if batch.undecodable > 0 {
                    tracing::warn!(
                        count = batch.undecodable,
                        "skipped updates that could not be decoded"
                    );
                }
                let mut updates = batch.updates;
                updates.sort_by_key(|update| update.update_id);
                for update in updates {
                    let next_offset = update.update_id + 1;
                    tokio::select! {
                        _ = stop.wait_for(|stop| *stop) => return Ok(offset),
                        () = bot.dispatch(update) => {}
                    }
                    offset = Some(offset.map_or(next_offset, |offset| offset.max(next_offset)));
                }
                if let Some(highest) = batch.highest_update_id {
                    offset = Some(offset.map_or(highest + 1, |offset| offset.max(highest + 1)));
                }
            }
            Err(source @ TelegramError::Unauthorized { .. }) => {
                return Err(RunError::TokenRefused { source });
            }
            Err(error) => {
                failures += 1;
                let wait = retry_wait(&error, failures);
                tracing::warn!(error = %error_chain(&error), retry_in_ms = wait.as_millis() as u64, "polling telegram failed");
                if sleep_or_stop(wait, stop).await {
                    return Ok(offset);
                }
            }
        }
    }
}

fn retry_wait(error: &TelegramError, failures: u32) -> Duration {
    match error {
        TelegramError::TooManyRequests { retry_after_seconds, .. } => {
            Duration::from_secs((*retry_after_seconds).clamp(1, 300))
        }
        _ => Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)),
    }
}

/// Sleeps for `wait`; `true` if shutdown came first.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.wait_for(|stop| *stop) => true,
        () = tokio::time::sleep(wait) => false,
    }
}
