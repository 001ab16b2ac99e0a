//! Clients for the broker tests: rumqttc for 3.1.1 and 5 (TCP and WebSocket), raw sockets for
//! what no well-behaved client sends, and the "still serving" check every hostile test ends with.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};
use rumqttc::v5::mqttbytes::v5::{Packet as P5, Publish as Publish5};
use rumqttc::{Packet as P4, Publish as Publish4};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

/// A broker of the test's own on loopback, any free ports, TCP and WebSocket.
pub fn broker() -> EmbeddedBroker {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    EmbeddedBroker::start(BrokerConfig::new(any).with_ws(any)).expect("broker starts")
}

/// A name unique in this process.
pub fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where a client connects.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    Tcp,
    Ws,
}

/// An MQTT 3.1.1 client whose incoming packets arrive on `rx`.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<P4>,
    task: tokio::task::JoinHandle<()>,
}

/// An MQTT 5 client whose incoming packets arrive on `rx`.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<P5>,
    task: tokio::task::JoinHandle<()>,
}

fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/mqtt")
}

/// Options for a 3.1.1 client of `b`.
pub fn v4_options(b: &EmbeddedBroker, via: Via, id: &str) -> rumqttc::MqttOptions {
    let mut o = match via {
        Via::Tcp => rumqttc::MqttOptions::new(id, "127.0.0.1", b.tcp_addr().port()),
        Via::Ws => {
            let ws = b.ws_addr().expect("ws listener");
            let mut o = rumqttc::MqttOptions::new(id, ws_url(ws), ws.port());
            o.set_transport(rumqttc::Transport::Ws);
            o
        }
    };
    o.set_keep_alive(Duration::from_secs(5));
    // rumqttc's default is 10 KiB; the tests send 10,000-level topics.
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Options for a 5 client of `b`.
pub fn v5_options(b: &EmbeddedBroker, via: Via, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = match via {
        Via::Tcp => rumqttc::v5::MqttOptions::new(id, "127.0.0.1", b.tcp_addr().port()),
        Via::Ws => {
            let ws = b.ws_addr().expect("ws listener");
            let mut o = rumqttc::v5::MqttOptions::new(id, ws_url(ws), ws.port());
            o.set_transport(rumqttc::Transport::Ws);
            o
        }
    };
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(Some(1 << 20));
    o
}

/// Connects a 3.1.1 client and waits for its CONNACK.
pub async fn v4(opts: rumqttc::MqttOptions) -> V4 {
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 1000);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    match next(&mut rx).await {
        P4::ConnAck(a) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    V4 { client, rx, task }
}

/// Connects a 5 client and returns it with its CONNACK.
pub async fn v5(opts: rumqttc::v5::MqttOptions) -> (V5, rumqttc::v5::mqttbytes::v5::ConnAck) {
    let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 1000);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    match next(&mut rx).await {
        P5::ConnAck(a) => (V5 { client, rx, task }, a),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// The next item, or a panic after [`WAIT`].
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("nothing arrived in time")
        .expect("the client's event loop ended")
}

/// The first item `pick` maps to `Some` (others, like PINGRESP, are skipped), or a panic after
/// [`WAIT`] in all.
pub async fn first<T: std::fmt::Debug, R>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    mut pick: impl FnMut(T) -> Option<R>,
) -> R {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("no {what} within {WAIT:?}"),
            Ok(None) => panic!("the client's event loop ended while waiting for {what}"),
            Ok(Some(item)) => {
                if let Some(r) = pick(item) {
                    return r;
                }
            }
        }
    }
}

impl V4 {
    /// Drops the connection without a DISCONNECT (as a crash or a cut cable would).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        first(&mut self.rx, "SUBACK", |p| {
            matches!(p, P4::SubAck(_)).then_some(())
        })
        .await
    }

    /// The next PUBLISH.
    pub async fn publish(&mut self) -> Publish4 {
        first(&mut self.rx, "PUBLISH", |p| match p {
            P4::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }
}

impl V5 {
    /// Drops the connection without a DISCONNECT (as a crash or a cut cable would).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Subscribes with these options and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: rumqttc::v5::mqttbytes::v5::Filter) {
        self.client.subscribe_many([filter]).await.unwrap();
        let ack = first(&mut self.rx, "SUBACK", |p| match p {
            P5::SubAck(a) => Some(a),
            _ => None,
        })
        .await;
        assert!(
            ack.return_codes.iter().all(|c| matches!(
                c,
                rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
            )),
            "{ack:?}"
        );
    }

    /// The next PUBLISH.
    pub async fn publish(&mut self) -> Publish5 {
        first(&mut self.rx, "PUBLISH", |p| match p {
            P5::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }

    /// True when no PUBLISH arrives within `d`.
    pub async fn quiet_for(&mut self, d: Duration) -> Result<(), Publish5> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) | Ok(None) => return Ok(()),
                Ok(Some(P5::Publish(p))) => return Err(p),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// The broker still serves: a 3.1.1 and a 5 client on TCP exchange a QoS 1 message each way.
pub async fn assert_serving(b: &EmbeddedBroker) {
    let t = unique("alive");
    let mut sub = v4(v4_options(b, Via::Tcp, &unique("alive-sub"))).await;
    sub.subscribe(&format!("{t}/#"), rumqttc::QoS::AtLeastOnce)
        .await;
    let (mut p, _) = v5(v5_options(b, Via::Tcp, &unique("alive-pub"))).await;
    p.subscribe(rumqttc::v5::mqttbytes::v5::Filter::new(
        format!("{t}/#"),
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    ))
    .await;
    p.client
        .publish(
            format!("{t}/x"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "alive",
        )
        .await
        .unwrap();
    let m = sub.publish().await;
    assert_eq!(&m.payload[..], b"alive");
    let m = p.publish().await;
    assert_eq!(&m.payload[..], b"alive");
    let _ = sub.client.disconnect().await;
    let _ = p.client.disconnect().await;
}

/// Sends `bytes` on a new connection and reads until the broker closes it or `wait` passes.
/// Returns what the broker answered.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// An MQTT variable-length integer.
pub fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A packet: fixed header byte, remaining length, body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    p.extend(remaining_length(body.len()));
    p.extend_from_slice(body);
    p
}

/// An MQTT string.
pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A CONNECT packet: `level` 4 (3.1.1) or 5, clean, with this keepalive.
pub fn connect(level: u8, id: &str, keepalive: u16) -> Vec<u8> {
    let mut body = string(b"MQTT");
    body.push(level);
    body.push(0x02); // clean session / clean start
    body.extend(keepalive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(string(id.as_bytes()));
    packet(0x10, &body)
}

/// A QoS 0 PUBLISH (3.1.1 layout; add `props` for 5).
pub fn publish0(topic: &[u8], payload: &[u8], v5: bool) -> Vec<u8> {
    let mut body = string(topic);
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// A raw connection to the broker, TCP or WebSocket (binary messages), that moves bytes.
pub enum Wire {
    Tcp(TcpStream),
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>>),
}

impl Wire {
    /// Opens a connection to `b`'s TCP or WebSocket listener.
    pub async fn open(b: &EmbeddedBroker, via: Via) -> Wire {
        match via {
            Via::Tcp => Wire::Tcp(TcpStream::connect(b.tcp_addr()).await.expect("connect")),
            Via::Ws => {
                use tokio_tungstenite::tungstenite::client::IntoClientRequest;
                let addr = b.ws_addr().expect("the broker has a WebSocket listener");
                let mut req = ws_url(addr).into_client_request().expect("request");
                req.headers_mut()
                    .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
                let (ws, _) = tokio_tungstenite::connect_async(req)
                    .await
                    .expect("WebSocket connect");
                Wire::Ws(Box::new(ws))
            }
        }
    }

    /// Writes `bytes` (ignoring a broker that already closed).
    pub async fn write(&mut self, bytes: &[u8]) {
        match self {
            Wire::Tcp(s) => {
                let _ = s.write_all(bytes).await;
            }
            Wire::Ws(ws) => {
                use futures_util::SinkExt;
                let msg = tokio_tungstenite::tungstenite::Message::binary(bytes.to_vec());
                let _ = ws.send(msg).await;
            }
        }
    }

    /// Appends what arrives next to `buf`; false once the broker closed the connection.
    pub async fn read_into(&mut self, buf: &mut bytes::BytesMut) -> bool {
        match self {
            Wire::Tcp(s) => matches!(s.read_buf(buf).await, Ok(n) if n > 0),
            Wire::Ws(ws) => {
                use futures_util::StreamExt;
                use tokio_tungstenite::tungstenite::Message;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Binary(b))) => {
                            buf.extend_from_slice(&b);
                            return true;
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }
}

/// An MQTT 5 client on a raw connection: it sends whatever packet or bytes a test builds
/// (rumqttc's codec writes and reads the packets) and sees every packet the broker answers with,
/// including a DISCONNECT and the close after it.
pub struct Raw5 {
    wire: Wire,
    read: bytes::BytesMut,
}

/// What [`Raw5::until_closed`] saw: the DISCONNECT the broker sent, if any, and the packets
/// before it.
#[derive(Debug)]
pub struct Closed {
    pub disconnect: Option<rumqttc::v5::mqttbytes::v5::Disconnect>,
    pub before: Vec<P5>,
}

impl Raw5 {
    /// Opens a TCP connection to `addr` and sends `connect`; the CONNACK is the first packet to
    /// read.
    pub async fn open(addr: SocketAddr, connect: rumqttc::v5::mqttbytes::v5::Connect) -> Raw5 {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Raw5::open_on(Wire::Tcp(stream), connect).await
    }

    /// Sends `connect` on `wire`.
    pub async fn open_on(wire: Wire, connect: rumqttc::v5::mqttbytes::v5::Connect) -> Raw5 {
        let mut raw = Raw5 {
            wire,
            read: bytes::BytesMut::new(),
        };
        raw.send(P5::Connect(connect, None, None)).await;
        raw
    }

    /// Connects over TCP with `connect` and returns the client and its CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        connect: rumqttc::v5::mqttbytes::v5::Connect,
    ) -> (Raw5, rumqttc::v5::mqttbytes::v5::ConnAck) {
        Raw5::open(addr, connect).await.connack().await
    }

    /// Connects on `wire` with `connect` (and an optional will) and returns the client and its
    /// CONNACK.
    pub async fn connect_on(
        wire: Wire,
        connect: rumqttc::v5::mqttbytes::v5::Connect,
        will: Option<rumqttc::v5::mqttbytes::v5::LastWill>,
    ) -> (Raw5, rumqttc::v5::mqttbytes::v5::ConnAck) {
        let mut raw = Raw5 {
            wire,
            read: bytes::BytesMut::new(),
        };
        raw.send(P5::Connect(connect, will, None)).await;
        raw.connack().await
    }

    async fn connack(mut self) -> (Raw5, rumqttc::v5::mqttbytes::v5::ConnAck) {
        match self.next().await {
            Some(P5::ConnAck(ack)) => (self, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A clean-start CONNECT for `id`, keepalive 30 s, no properties.
    pub fn clean(id: &str) -> rumqttc::v5::mqttbytes::v5::Connect {
        rumqttc::v5::mqttbytes::v5::Connect {
            keep_alive: 30,
            client_id: id.to_string(),
            clean_start: true,
            properties: None,
        }
    }

    /// Writes `packet` (ignoring a broker that already closed).
    pub async fn send(&mut self, packet: P5) {
        let mut out = bytes::BytesMut::new();
        packet.write(&mut out, None).expect("encodes");
        self.send_bytes(&out).await;
    }

    /// Writes `bytes` as they are (ignoring a broker that already closed).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.wire.write(bytes).await;
    }

    /// The next packet from the broker; `None` once it closed the connection. Panics after
    /// [`WAIT`] without either.
    pub async fn next(&mut self) -> Option<P5> {
        tokio::time::timeout(WAIT, async {
            loop {
                match P5::read(&mut self.read, None) {
                    Ok(p) => return Some(p),
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("the broker sent a packet rumqttc cannot read: {e:?}"),
                }
                if !self.wire.read_into(&mut self.read).await {
                    return None;
                }
            }
        })
        .await
        .expect("the broker answers or closes within WAIT")
    }

    /// Reads until the broker closes the connection.
    pub async fn until_closed(mut self) -> Closed {
        let mut before = Vec::new();
        while let Some(p) = self.next().await {
            if let P5::Disconnect(d) = p {
                assert!(
                    self.next().await.is_none(),
                    "the broker closes after its DISCONNECT"
                );
                return Closed {
                    disconnect: Some(d),
                    before,
                };
            }
            before.push(p);
        }
        Closed {
            disconnect: None,
            before,
        }
    }
}

/// An MQTT 3.1.1 client on a raw connection (rumqttc's 3.1.1 codec), as [`Raw5`].
pub struct Raw4 {
    wire: Wire,
    read: bytes::BytesMut,
}

impl Raw4 {
    /// Connects on `wire` with client id `id` and `clean_session`; returns the client and its
    /// CONNACK.
    pub async fn connect_on(
        wire: Wire,
        id: &str,
        clean_session: bool,
        will: Option<rumqttc::LastWill>,
    ) -> (Raw4, rumqttc::ConnAck) {
        let mut raw = Raw4 {
            wire,
            read: bytes::BytesMut::new(),
        };
        let mut connect = rumqttc::Connect::new(id);
        connect.keep_alive = 30;
        connect.clean_session = clean_session;
        connect.last_will = will;
        raw.send(P4::Connect(connect)).await;
        match raw.next().await {
            Some(P4::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Writes `packet`.
    pub async fn send(&mut self, packet: P4) {
        let mut out = bytes::BytesMut::new();
        packet.write(&mut out, usize::MAX).expect("encodes");
        self.wire.write(&out).await;
    }

    /// The next packet from the broker; `None` once it closed the connection.
    pub async fn next(&mut self) -> Option<P4> {
        tokio::time::timeout(WAIT, async {
            loop {
                match P4::read(&mut self.read, usize::MAX) {
                    Ok(p) => return Some(p),
                    Err(rumqttc::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("the broker sent a packet rumqttc cannot read: {e:?}"),
                }
                if !self.wire.read_into(&mut self.read).await {
                    return None;
                }
            }
        })
        .await
        .expect("the broker answers or closes within WAIT")
    }
}
