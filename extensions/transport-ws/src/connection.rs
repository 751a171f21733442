//! One WebSocket connection: a reader loop (this task) that handles client messages in
//! order, a writer task that owns the socket's sink and drains the connection's bounded
//! [`Outbox`], and one forwarder task per subscribed conversation that turns
//! [`EventFrame`]s into `chat.delta` frames.
//!
//! Closing the socket only drops this connection's subscriptions; it never stops a turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use dispatch_kernel::abi::{EventFrame, SendRequest, Session, SessionError, Subscription};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{
    AgentEvent, ChatRequest, Id, WS_CLOSE_POLICY, WsClientMessage, WsServerMessage,
};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::clients::{Clients, Outbox};
use crate::config::Config;
use crate::frame;

/// How long a closing socket may take to flush its close frame (a client that stopped
/// reading never will); then the TCP connection is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// At most this many queued frames are written before one flush.
const WRITE_BATCH: usize = 64;

/// Close code for a message larger than `max_message_bytes`.
const WS_CLOSE_TOO_BIG: u16 = 1009;

/// What every connection shares: the extension's state while it is active.
pub(crate) struct Shared {
    pub(crate) session: Arc<dyn Session>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) config: Config,
    /// The extension's token: cancelled at deactivation.
    pub(crate) token: CancellationToken,
    /// Connection, writer and forwarder tasks, awaited at deactivation.
    pub(crate) tracker: TaskTracker,
    pub(crate) span: tracing::Span,
}

/// `GET /ws`.
pub(crate) async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if shared.token.is_cancelled() {
        return ApiError::from(SessionError::ShuttingDown).into_response();
    }
    let max = shared.config.max_message_bytes;
    let span = shared.span.clone();
    let tracker = shared.tracker.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| tracker.track_future(run(socket, shared).instrument(span)))
}

/// Serves one connection until either side closes it.
async fn run(socket: WebSocket, shared: Arc<Shared>) {
    let (outbox, rx) = Outbox::new(shared.config.client_queue, shared.token.child_token());
    let client = shared.clients.add(outbox.clone());
    tracing::debug!(client, "WebSocket client connected");
    let (sink, stream) = socket.split();
    shared
        .tracker
        .spawn(write(sink, rx, outbox.clone()).in_current_span());

    let mut connection = Connection {
        shared: shared.clone(),
        outbox: outbox.clone(),
        subscriptions: HashMap::new(),
    };
    connection.read(stream).await;
    drop(connection);

    outbox.hang_up();
    shared.clients.remove(client);
    tracing::debug!(client, "WebSocket client disconnected");
}

/// Drains the outbox into the socket until the connection closes, then sends the close
/// frame (if one was set) within [`CLOSE_GRACE`].
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
    outbox: Arc<Outbox>,
) {
    let closing = outbox.closing().clone();
    loop {
        let first = tokio::select! {
            biased;
            () = closing.cancelled() => break,
            text = rx.recv() => match text {
                Some(text) => text,
                None => break,
            },
        };
        // A socket that stopped draining blocks here; closing interrupts it (what was
        // buffered stays whole and goes out before the close frame).
        let written = tokio::select! {
            biased;
            () = closing.cancelled() => break,
            written = async {
                sink.feed(Message::Text(first)).await?;
                for _ in 1..WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(text) => sink.feed(Message::Text(text)).await?,
                        Err(_) => break,
                    }
                }
                sink.flush().await
            } => written,
        };
        if let Err(err) = written {
            tracing::debug!(error = %err, "WebSocket write failed");
            outbox.hang_up();
            return;
        }
    }
    let frame = outbox.close_frame();
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if let Some(frame) = frame {
            if sink.send(Message::Close(Some(frame))).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    })
    .await;
}

/// Where a forwarder stopped: the last frame it queued.
type Position = (Id, u32);

/// A subscribed conversation's forwarder.
struct Forwarder {
    cancel: CancellationToken,
    task: JoinHandle<Option<Position>>,
}

/// The reader side of a connection and the subscriptions it holds.
struct Connection {
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    subscriptions: HashMap<Id, Forwarder>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, forwarder) in self.subscriptions.drain() {
            forwarder.task.abort();
        }
    }
}

/// The fields of a message that did not parse, to echo them in the error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default, rename = "type")]
    kind: Option<serde_json::Value>,
    #[serde(default)]
    conversation_id: Option<serde_json::Value>,
    #[serde(default)]
    request_id: Option<serde_json::Value>,
}

impl Connection {
    async fn read(&mut self, mut stream: SplitStream<WebSocket>) {
        let closing = self.outbox.closing().clone();
        loop {
            let message = tokio::select! {
                biased;
                () = closing.cancelled() => return,
                message = stream.next() => message,
            };
            match message {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Err(err)) => {
                    let err = err.to_string();
                    if err.contains("Space limit exceeded") {
                        self.outbox
                            .close(WS_CLOSE_TOO_BIG, "message too big (see max_message_bytes)");
                    } else {
                        tracing::debug!(error = %err, "WebSocket read failed");
                    }
                    return;
                }
                Some(Ok(Message::Text(text))) => self.handle(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    self.outbox.close(
                        WS_CLOSE_POLICY,
                        "binary frames are not supported; send JSON text",
                    );
                    return;
                }
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
    }

    async fn handle(&mut self, text: &str) {
        let message = match serde_json::from_str::<WsClientMessage>(text) {
            Ok(message) => message,
            Err(err) => return self.invalid(text, Some(err)),
        };
        match message {
            WsClientMessage::ChatSend(request) => self.chat_send(request).await,
            WsClientMessage::ChatSubscribe { conversation_id } => self.subscribe(conversation_id),
            WsClientMessage::ChatUnsubscribe { conversation_id } => {
                if let Some(forwarder) = self.subscriptions.remove(conversation_id.as_str()) {
                    forwarder.task.abort();
                }
            }
            WsClientMessage::ChatQueue {
                conversation_id,
                text,
                request_id,
            } => self.queue(conversation_id, text, request_id).await,
            WsClientMessage::SurfaceSubscribe {
                conversation_id, ..
            }
            | WsClientMessage::SurfaceUnsubscribe {
                conversation_id, ..
            }
            | WsClientMessage::SurfaceInvoke {
                conversation_id, ..
            } => {
                self.outbox.send(&WsServerMessage::ChatError {
                    conversation_id: conversation_id.map(Id::from),
                    request_id: None,
                    error: "surfaces are not available yet".to_string(),
                    code: Some("unsupported".to_string()),
                });
            }
            WsClientMessage::Unknown => self.invalid(text, None),
        }
    }

    /// Answers a message that did not parse (`parse_error`) or has an unknown type (`None`)
    /// with `chat.error` code `invalid`, echoing its ids when it has them. The connection
    /// stays open.
    fn invalid(&self, text: &str, parse_error: Option<serde_json::Error>) {
        let envelope = serde_json::from_str::<Envelope>(text).ok();
        let string = |value: Option<serde_json::Value>| match value {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        let (kind, conversation_id, request_id) = match envelope {
            Some(e) => (
                string(e.kind),
                string(e.conversation_id),
                string(e.request_id),
            ),
            None => (None, None, None),
        };
        let error = match (parse_error, kind) {
            (Some(err), _) => format!("invalid message: {err}"),
            (None, Some(kind)) => format!("unknown message type `{kind}`"),
            (None, None) => "unknown message type".to_string(),
        };
        self.outbox.send(&WsServerMessage::ChatError {
            conversation_id: conversation_id.map(Id::from),
            request_id,
            error,
            code: Some("invalid".to_string()),
        });
    }

    fn session_error(
        &self,
        conversation_id: Option<Id>,
        request_id: Option<String>,
        err: SessionError,
    ) {
        if let SessionError::Internal(message) = &err {
            tracing::error!(error = %message, "Session request failed");
        }
        self.outbox.send(&WsServerMessage::ChatError {
            conversation_id,
            request_id,
            error: err.to_string(),
            code: Some(err.code().to_string()),
        });
    }

    async fn chat_send(&mut self, request: ChatRequest) {
        let conversation_id = request.conversation_id.as_deref().map(Id::from);
        let request_id = request.request_id.clone();
        let send = SendRequest {
            conversation_id: conversation_id.clone(),
            text: request.message,
            model: request.model,
            reasoning_effort: request.reasoning_effort,
            cwd: request.cwd,
            workspace_id: request.workspace_id,
            computer_id: request.computer_id.map(Id::from),
            request_id: request.request_id,
        };
        match self.shared.session.send(send).await {
            Ok(accepted) => {
                let queued = self.outbox.send(&WsServerMessage::ChatAccepted {
                    conversation_id: accepted.conversation_id.clone(),
                    turn_id: accepted.turn_id.clone(),
                    request_id,
                });
                if queued {
                    self.replace(accepted.conversation_id, accepted.subscription)
                        .await;
                }
            }
            Err(err) => self.session_error(conversation_id, request_id, err),
        }
    }

    async fn queue(&mut self, conversation_id: String, text: String, request_id: Option<String>) {
        let conversation_id = Id::from(conversation_id);
        let request = SendRequest {
            conversation_id: Some(conversation_id.clone()),
            text,
            request_id: request_id.clone(),
            ..SendRequest::default()
        };
        match self.shared.session.enqueue(request).await {
            Ok(enqueued) => {
                let queued = self.outbox.send(&WsServerMessage::ChatQueued {
                    conversation_id: enqueued.conversation_id.clone(),
                    queued: enqueued.queued,
                    started_turn: enqueued.started.is_some(),
                    request_id,
                });
                if let (true, Some(started)) = (queued, enqueued.started) {
                    self.replace(started.conversation_id, started.subscription)
                        .await;
                }
            }
            Err(err) => self.session_error(Some(conversation_id), request_id, err),
        }
    }

    /// `chat.subscribe`: answers `chat.subscribed` first, then forwards. A conversation
    /// this connection already watches is only answered.
    fn subscribe(&mut self, conversation_id: String) {
        if conversation_id.is_empty() {
            self.outbox.send(&WsServerMessage::ChatError {
                conversation_id: None,
                request_id: None,
                error: "invalid conversationId: must not be empty".to_string(),
                code: Some("invalid".to_string()),
            });
            return;
        }
        let conversation_id = Id::from(conversation_id);
        let watching = self
            .subscriptions
            .get(&conversation_id)
            .is_some_and(|f| !f.task.is_finished());
        if watching {
            self.outbox.send(&WsServerMessage::ChatSubscribed {
                is_active: self.shared.session.is_active(&conversation_id),
                conversation_id,
            });
            return;
        }
        let subscription = self.shared.session.subscribe(&conversation_id);
        let answered = self.outbox.send(&WsServerMessage::ChatSubscribed {
            is_active: self.shared.session.is_active(&conversation_id),
            conversation_id: conversation_id.clone(),
        });
        if answered {
            self.attach(conversation_id, subscription, None);
        }
    }

    /// Watches a conversation through `subscription`, replacing a subscription this
    /// connection already holds for it. The old forwarder hands over what it had queued
    /// and where it stopped, and the new one skips frames up to there, so the client sees
    /// no frame twice and none missing.
    async fn replace(&mut self, conversation_id: Id, subscription: Subscription) {
        let after = match self.subscriptions.remove(&conversation_id) {
            Some(old) => {
                old.cancel.cancel();
                old.task.await.ok().flatten()
            }
            None => None,
        };
        self.attach(conversation_id, subscription, after);
    }

    fn attach(&mut self, conversation_id: Id, subscription: Subscription, after: Option<Position>) {
        let cancel = self.outbox.closing().child_token();
        let task = self.shared.tracker.spawn(
            forward(subscription, self.outbox.clone(), cancel.clone(), after).in_current_span(),
        );
        self.subscriptions
            .insert(conversation_id, Forwarder { cancel, task });
    }
}

/// Forwards a subscription's frames as `chat.delta` (plus `chat.error` after an `error`
/// event) until it ends, the connection closes or `cancel` fires. A subscription the hub
/// dropped as lagged closes the connection with `WS_CLOSE_LAGGED`. On `cancel`, frames
/// already queued are forwarded before returning. Returns the last frame forwarded.
async fn forward(
    mut subscription: Subscription,
    outbox: Arc<Outbox>,
    cancel: CancellationToken,
    mut last: Option<Position>,
) -> Option<Position> {
    let prefix = frame::delta_prefix(subscription.conversation_id());
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            next = subscription.recv() => next,
        };
        match next {
            Some(frame) => {
                if !deliver(&frame, &prefix, &outbox, &mut last) {
                    return last;
                }
            }
            None => {
                if subscription.lagged() {
                    tracing::info!(
                        conversation_id = %subscription.conversation_id(),
                        "Subscription dropped by the session hub as lagged; closing the socket with 4008"
                    );
                    outbox.close(
                        dispatch_wire::WS_CLOSE_LAGGED,
                        crate::clients::LAGGED_REASON,
                    );
                }
                return last;
            }
        }
    }
    while let Some(frame) = subscription.try_recv() {
        if !deliver(&frame, &prefix, &outbox, &mut last) {
            break;
        }
    }
    last
}

/// Queues one frame unless it is at or before `last` in the same turn. False when the
/// connection no longer takes frames.
fn deliver(frame: &EventFrame, prefix: &str, outbox: &Outbox, last: &mut Option<Position>) -> bool {
    if let Some((turn, index)) = last.as_ref() {
        if *turn == frame.turn_id && frame.index <= *index {
            return true;
        }
    }
    if !outbox.push(frame::delta(prefix, &frame.json)) {
        return false;
    }
    *last = Some((frame.turn_id.clone(), frame.index));
    if let AgentEvent::Error { message, code, .. } = &frame.event {
        return outbox.send(&WsServerMessage::ChatError {
            conversation_id: Some(frame.conversation_id.clone()),
            request_id: None,
            error: message.clone(),
            code: code.clone(),
        });
    }
    true
}
