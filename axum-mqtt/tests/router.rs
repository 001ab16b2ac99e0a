//! Routing with named segments, extractors and their rejections, state, merge/nest, layers, fallback,
//! request/response — through a real broker.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum_mqtt::extract::MqttRequest;
use axum_mqtt::extract::{
    ContentType, CorrelationData, Json, Params, Payload, Rejection, ResponseTopic, Retain, State,
    Text, Topic, UserProperties,
};
use axum_mqtt::router::{RouteOptions, TraceLayer};
use axum_mqtt::rpc::Responder;
use axum_mqtt::{Error, Message, Mqtt, Properties, Protocol, QoS, Router, RouterError, StartError};
use axum_mqtt_testkit::unique;
use common::*;
use tokio::sync::mpsc;

type Tx = mpsc::UnboundedSender<String>;

async fn start(protocol: Protocol, router: Router) -> Mqtt {
    let mqtt = connected(Mqtt::builder(embedded_config(protocol)).router(router.clone())).await;
    // Route subscriptions go out on connect; re-subscribing waits for the broker's SUBACK.
    for (f, q) in router.subscriptions() {
        mqtt.subscribe(&f, q).await.expect("subscribe");
    }
    mqtt
}

#[tokio::test]
async fn named_segments_and_wildcards_route_to_the_right_handlers() {
    init_tracing();
    let t = unique("routes");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    #[derive(serde::Deserialize)]
    struct Sensor {
        device: String,
        kind: String,
    }
    let router = Router::new()
        .route(
            &format!("{t}/sensors/{{device}}/{{kind}}"),
            |Params(s): Params<Sensor>, State(tx): State<Tx>| async move {
                let _ = tx.send(format!("sensor {} {}", s.device, s.kind));
            },
        )
        .route(
            &format!("{t}/logs/{{*rest}}"),
            |Params(rest): Params<String>, State(tx): State<Tx>| async move {
                let _ = tx.send(format!("logs [{rest}]"));
            },
        )
        .route(
            &format!("{t}/devices/{{id}}/+"),
            |Params(id): Params<u32>, State(tx): State<Tx>| async move {
                let _ = tx.send(format!("device #{id}"));
            },
        )
        .with_state(tx.clone());
    assert_eq!(router.subscriptions().len(), 3);
    let mqtt = start(Protocol::V311, router).await;
    let cases = [
        ("sensors/k1/temp", "sensor k1 temp"),
        ("sensors//temp", "sensor  temp"),
        ("logs", "logs []"),
        ("logs/a/b/c", "logs [a/b/c]"),
        ("devices/42/x", "device #42"),
    ];
    for (topic, want) in cases {
        mqtt.publish(format!("{t}/{topic}"), "x")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, want, "topic {topic}");
    }
    // `devices/{id}` with a non-number id is a Params rejection: no handler output.
    mqtt.publish(format!("{t}/devices/abc/x"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.publish(format!("{t}/logs/after"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "logs [after]");
    assert_eq!(mqtt.stats().rejected, 1);
}

#[tokio::test]
async fn every_matching_route_runs_and_fallback_only_when_none() {
    let t = unique("overlap");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let router = Router::new()
        .route(&format!("{t}/a/+"), |State(tx): State<Tx>| async move {
            let _ = tx.send("plus".into());
        })
        .route(&format!("{t}/a/b"), |State(tx): State<Tx>| async move {
            let _ = tx.send("exact".into());
        })
        .fallback(|Topic(topic): Topic, State(tx): State<Tx>| async move {
            let _ = tx.send(format!("fallback {topic}"));
        })
        .with_state(tx);
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V311)).router(router)).await;
    mqtt.subscribe(&format!("{t}/a/b"), QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.subscribe(&format!("{t}/a/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.subscribe(&format!("{t}/other"), QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.publish(format!("{t}/a/b"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    // The broker may deliver one copy per overlapping subscription (rumqttd did; rmqtt and Mosquitto send one); each copy runs
    // both matching routes, in registration order, and never the fallback.
    let mut got = vec![next(&mut rx).await, next(&mut rx).await];
    while let Ok(Some(x)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        got.push(x);
    }
    assert_eq!(got.len() % 2, 0, "{got:?}");
    for pair in got.chunks(2) {
        assert_eq!(
            pair,
            ["plus", "exact"],
            "all matching routes run, in order: {got:?}"
        );
    }
    mqtt.publish(format!("{t}/other"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, format!("fallback {t}/other"));
}

#[tokio::test]
async fn extractors_succeed_and_reject_precisely() {
    let t = unique("extract");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let (rej_tx, mut rej_rx) = mpsc::unbounded_channel::<Rejection>();
    #[derive(serde::Deserialize)]
    struct Reading {
        celsius: f64,
    }
    let router =
        Router::new()
            .route(
                &format!("{t}/json"),
                |Json(r): Json<Reading>, State(tx): State<Tx>| async move {
                    let _ = tx.send(format!("json {}", r.celsius));
                },
            )
            .route(
                &format!("{t}/text"),
                |Text(s): Text, State(tx): State<Tx>| async move {
                    let _ = tx.send(format!("text {s}"));
                },
            )
            .route(
                &format!("{t}/raw"),
                |Payload(p): Payload,
                 qos: QoS,
                 Retain(r): Retain,
                 m: Message,
                 State(tx): State<Tx>| async move {
                    let _ = tx.send(format!(
                        "raw {} {:?} {} {}",
                        p.len(),
                        qos,
                        r,
                        m.topic().ends_with("/raw")
                    ));
                },
            )
            .on_rejection(move |r, _m| {
                let rej_tx = rej_tx.clone();
                async move {
                    let _ = rej_tx.send(r);
                }
            })
            .with_state(tx);
    let mqtt = start(Protocol::V311, router).await;
    let publish = |topic: &str, payload: &'static [u8]| {
        let mqtt = mqtt.clone();
        let topic = format!("{t}/{topic}");
        async move {
            mqtt.publish(topic, payload)
                .qos(QoS::AtLeastOnce)
                .await
                .unwrap()
        }
    };
    publish("json", br#"{"celsius": 21.5}"#).await;
    assert_eq!(next(&mut rx).await, "json 21.5");
    publish("json", b"{not json").await;
    assert!(matches!(
        next(&mut rej_rx).await,
        Rejection::JsonSyntax { .. }
    ));
    publish("json", br#"{"kelvin": 3}"#).await;
    assert!(matches!(
        next(&mut rej_rx).await,
        Rejection::JsonData { .. }
    ));
    publish("json", b"\xff\xfe").await;
    assert!(matches!(
        next(&mut rej_rx).await,
        Rejection::InvalidUtf8 { .. }
    ));
    publish("text", "héllo".as_bytes()).await;
    assert_eq!(next(&mut rx).await, "text héllo");
    publish("text", b"\xc3\x28").await;
    match next(&mut rej_rx).await {
        Rejection::InvalidUtf8 { valid_up_to, .. } => assert_eq!(valid_up_to, 0),
        other => panic!("{other:?}"),
    }
    publish("raw", b"\x00\x01\x02").await;
    assert_eq!(next(&mut rx).await, "raw 3 AtLeastOnce false true");
    assert_eq!(mqtt.stats().rejected, 4);
    nothing(&mut rx, Duration::from_millis(100)).await;
}

#[tokio::test]
async fn mqtt5_property_extractors_and_request_response() {
    let t = unique("props");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let router = Router::new()
        .route(
            &format!("{t}/meta"),
            |ContentType(ct): ContentType,
             UserProperties(up): UserProperties,
             ResponseTopic(rt): ResponseTopic,
             CorrelationData(cd): CorrelationData,
             State(tx): State<Tx>| async move {
                let _ = tx.send(format!("{ct} {up:?} {} {}", rt.ends_with("/r"), cd.len()));
            },
        )
        .route(
            &format!("{t}/echo"),
            |Text(body): Text, r: Responder| async move { r.reply(format!("echo: {body}")).await },
        )
        .route(
            &format!("{t}/bare"),
            |ct: Option<ContentType>, State(tx): State<Tx>| async move {
                let _ = tx.send(format!("bare {}", ct.is_none()));
            },
        )
        .with_state(tx);
    let mqtt = start(Protocol::V5, router).await;
    let props = Properties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("a".into(), "1".into())],
        response_topic: Some(format!("{t}/r")),
        correlation_data: Some(bytes::Bytes::from_static(b"abc")),
        ..Default::default()
    };
    mqtt.publish(format!("{t}/meta"), "x")
        .qos(QoS::AtLeastOnce)
        .properties(props)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, r#"text/plain [("a", "1")] true 3"#);
    mqtt.publish(format!("{t}/bare"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "bare true");
    // A message without properties is rejected by the strict extractors.
    mqtt.publish(format!("{t}/meta"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while mqtt.stats().rejected == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("missing properties must be a rejection");

    let caller = connected(Mqtt::builder(embedded_config(Protocol::V5))).await;
    let reply = caller
        .request(&format!("{t}/echo"), "ping", WAIT)
        .await
        .expect("reply");
    assert_eq!(reply.payload_str(), Some("echo: ping"));
    let e = caller
        .request(&format!("{t}/nobody"), "ping", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    let v4 = Mqtt::start(embedded_config(Protocol::V311)).await.unwrap();
    assert!(matches!(
        v4.request("x", "y", WAIT).await,
        Err(Error::PropertiesNeedV5)
    ));
}

#[tokio::test]
async fn merge_nest_and_state() {
    let t = unique("nest");
    #[derive(Clone)]
    struct AppState {
        tx: Tx,
        name: &'static str,
    }
    impl axum::extract::FromRef<AppState> for Tx {
        fn from_ref(s: &AppState) -> Tx {
            s.tx.clone()
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let rooms: Router<AppState> = Router::new().route(
        "light",
        |Params(room): Params<String>, State(s): State<AppState>, State(tx): State<Tx>| async move {
            let _ = tx.send(format!("{} light in {room}", s.name));
        },
    );
    let other: Router<AppState> =
        Router::new().route(&format!("{t}/door"), |State(tx): State<Tx>| async move {
            let _ = tx.send("door".into());
        });
    let router = Router::new()
        .nest(&format!("{t}/home/{{room}}"), rooms)
        .merge(other)
        .with_state(AppState { tx, name: "app" });
    let subs: Vec<String> = router.subscriptions().into_iter().map(|(f, _)| f).collect();
    assert_eq!(subs, vec![format!("{t}/home/+/light"), format!("{t}/door")]);
    let mqtt = start(Protocol::V311, router).await;
    mqtt.publish(format!("{t}/home/kitchen/light"), "on")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "app light in kitchen");
    mqtt.publish(format!("{t}/door"), "open")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "door");
}

/// A layer that counts calls, to see where `layer` and `route_layer` apply.
#[derive(Clone)]
struct Count(Arc<AtomicUsize>);

impl<S> tower::Layer<S> for Count {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted(inner, self.0.clone())
    }
}

#[derive(Clone)]
struct Counted<S>(S, Arc<AtomicUsize>);

impl<S: tower::Service<MqttRequest>> tower::Service<MqttRequest> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: MqttRequest) -> S::Future {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.call(req)
    }
}

#[tokio::test]
async fn layers_apply_to_routes_and_router() {
    let t = unique("layers");
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let route_count = Arc::new(AtomicUsize::new(0));
    let all_count = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(&format!("{t}/a"), |State(tx): State<Tx>| async move {
            let _ = tx.send("a".into());
        })
        .route_layer(Count(route_count.clone()))
        .route(&format!("{t}/slow"), |State(tx): State<Tx>| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let _ = tx.send("slow finished".into());
        })
        .fallback(|State(tx): State<Tx>| async move {
            let _ = tx.send("fallback".into());
        })
        .layer(Count(all_count.clone()))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            200,
        )))
        .layer(TraceLayer::new())
        .with_state(tx);
    let mqtt = start(Protocol::V311, router).await;
    mqtt.subscribe(&format!("{t}/x"), QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.publish(format!("{t}/a"), "1")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "a");
    mqtt.publish(format!("{t}/x"), "1")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "fallback");
    assert_eq!(
        route_count.load(Ordering::SeqCst),
        1,
        "route_layer: only the route added before it"
    );
    assert_eq!(
        all_count.load(Ordering::SeqCst),
        2,
        "layer: routes and fallback"
    );
    // The timeout layer turns a 5 s handler into a handler error after 200 ms.
    mqtt.publish(format!("{t}/slow"), "1")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while mqtt.stats().handler_errors == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("timeout layer must fail the slow handler");
    nothing(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn invalid_route_patterns_fail_start() {
    let router: Router = Router::new().route("a/{*rest}/b", || async {});
    let e = Mqtt::builder(embedded_config(Protocol::V311))
        .router(router)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            StartError::Router(RouterError::InvalidFilter { filter, .. }) if filter == "a/{*rest}/b"
        ),
        "{e}"
    );
    let router: Router = Router::new().shared("a/b");
    assert!(Mqtt::builder(embedded_config(Protocol::V311))
        .router(router)
        .start()
        .await
        .is_err());
}

#[tokio::test]
async fn route_qos_is_subscribed() {
    let router: Router = Router::new()
        .route_with(
            "q/two",
            RouteOptions::new().qos(QoS::ExactlyOnce),
            || async {},
        )
        .route("q/one", || async {})
        .shared("g");
    assert_eq!(
        router.subscriptions(),
        vec![
            ("$share/g/q/two".into(), QoS::ExactlyOnce),
            ("$share/g/q/one".into(), QoS::AtLeastOnce)
        ]
    );
}
