//! The public API's deliberate edges: handlers report an [`Outcome`] (a rejection is a response,
//! not an error to downcast), `Option<T>` is `None` only for what is absent, and routers that
//! cannot be combined without losing something refuse to start.

mod common;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_mqtt::extract::{
    ContentType, FromMessage, Json, MqttRequest, OptionalFromMessage, Rejection, State,
};
use axum_mqtt::router::{Handler, Outcome, Route};
use axum_mqtt::{
    Message, Mqtt, Properties, Protocol, QoS, Router, RouterError, RouterSetting, StartError,
};
use axum_mqtt_testkit::unique;
use common::*;
use tower::{Layer, Service, ServiceExt};

#[derive(serde::Deserialize)]
struct Reading {
    celsius: f64,
}

async fn record(Json(r): Json<Reading>) -> Result<(), std::io::Error> {
    if r.celsius > 1000.0 {
        return Err(std::io::Error::other("implausible reading"));
    }
    Ok(())
}

fn req(payload: &'static str) -> MqttRequest {
    MqttRequest::new(Message::new("sensors/a", payload))
}

/// A handler's outcome: handled, rejected (the handler does not run) or its own error.
#[tokio::test]
async fn handlers_report_outcomes() {
    let ok = Handler::<_, ()>::call(record, req(r#"{"celsius": 21.5}"#), ()).await;
    assert_eq!(ok.unwrap(), Outcome::Handled);

    let bad = Handler::<_, ()>::call(record, req("{celsius"), ()).await;
    match bad.unwrap() {
        Outcome::Rejected(Rejection::JsonSyntax { topic, .. }) => assert_eq!(topic, "sensors/a"),
        other => panic!("expected a JSON syntax rejection, got {other:?}"),
    }

    let failed = Handler::<_, ()>::call(record, req(r#"{"celsius": 5000}"#), ()).await;
    assert_eq!(failed.unwrap_err().to_string(), "implausible reading");
}

/// `Route` is a tower service of its own; the rejection passes through it as a response.
#[tokio::test]
async fn route_is_a_service_with_outcome_responses() {
    let mut route = Route::new(tower::service_fn(|r: MqttRequest| async move {
        Handler::<_, ()>::call(record, r, ()).await
    }));
    let out = route.ready().await.unwrap().call(req("[]")).await.unwrap();
    assert!(
        matches!(out, Outcome::Rejected(Rejection::JsonData { .. })),
        "{out:?}"
    );
}

/// A layer that records every outcome it sees.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Outcome>>>);

impl<S> Layer<S> for Seen {
    type Service = SeenService<S>;
    fn layer(&self, inner: S) -> SeenService<S> {
        SeenService(inner, self.clone())
    }
}

#[derive(Clone)]
struct SeenService<S>(S, Seen);

impl<S> Service<MqttRequest> for SeenService<S>
where
    S: Service<MqttRequest, Response = Outcome> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Outcome, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: MqttRequest) -> Self::Future {
        let fut = self.0.call(req);
        let seen = (self.1).0.clone();
        Box::pin(async move {
            let out = fut.await?;
            seen.lock().unwrap().push(out.clone());
            Ok(out)
        })
    }
}

/// Through a real broker: a layer sees the rejection as a response, the client counts it as a
/// rejection (not a handler error) and hands it to the rejection handler.
#[tokio::test]
async fn layers_see_rejections_and_the_client_counts_them() {
    let t = unique("outcome");
    let seen = Seen::default();
    let (tx, mut rejected) = tokio::sync::mpsc::unbounded_channel::<String>();
    let router: Router = Router::new()
        .route(&format!("{t}/reading"), record)
        .layer(seen.clone())
        .on_rejection(move |r, _m| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(r.kind().to_string());
            }
        });
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V311)).router(router)).await;
    for payload in ["not json", r#"{"celsius": 5000}"#, r#"{"celsius": 20}"#] {
        mqtt.publish(format!("{t}/reading"), payload)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    assert_eq!(next(&mut rejected).await, "json_syntax");
    let stats = wait_stats(&mqtt, |s| s.handled + s.rejected + s.handler_errors >= 3).await;
    assert_eq!(
        (stats.rejected, stats.handler_errors, stats.handled),
        (1, 1, 1)
    );
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the layer sees the rejection and the success: {seen:?}"
    );
    assert!(matches!(
        seen[0],
        Outcome::Rejected(Rejection::JsonSyntax { .. })
    ));
    assert_eq!(seen[1], Outcome::Handled);
}

/// `Option<T>`: `None` for absent, a rejection for malformed.
#[test]
fn option_is_none_only_when_absent() {
    let empty = req("");
    assert_eq!(Option::<Json<u32>>::from_message(&empty, &()), Ok(None));
    let malformed = req("nope");
    assert!(matches!(
        Option::<Json<u32>>::from_message(&malformed, &()),
        Err(Rejection::JsonSyntax { .. })
    ));
    let wrong_shape = req(r#""text""#);
    assert!(matches!(
        Option::<Json<u32>>::from_message(&wrong_shape, &()),
        Err(Rejection::JsonData { .. })
    ));
    assert_eq!(
        Option::<Json<u32>>::from_message(&req("7"), &()).map(|o| o.map(|j| j.0)),
        Ok(Some(7))
    );

    // MQTT 5 properties: absent is `None`, present is `Some`.
    assert_eq!(Option::<ContentType>::from_message(&empty, &()), Ok(None));
    let with_ct = MqttRequest::new(Message::new("t", "").with_properties(Properties {
        content_type: Some("text/plain".into()),
        ..Default::default()
    }));
    assert_eq!(
        Option::<ContentType>::from_message(&with_ct, &()),
        Ok(Some(ContentType("text/plain".into())))
    );
    // No client attached: `Option<Mqtt>` is `None`, `Mqtt` is a rejection.
    assert!(matches!(
        Option::<Mqtt>::from_message(&empty, &()),
        Ok(None)
    ));
    assert!(matches!(
        <Mqtt as FromMessage<()>>::from_message(&empty, &()),
        Err(Rejection::NoClient)
    ));
}

/// A custom extractor opts into `Option<T>` with `OptionalFromMessage`, and decides itself what
/// absent means.
#[test]
fn custom_optional_extractor() {
    #[derive(Debug, PartialEq)]
    struct Room(u32);
    impl<S> OptionalFromMessage<S> for Room {
        fn from_message(req: &MqttRequest, _: &S) -> Result<Option<Self>, Rejection> {
            match req.message().topic().strip_prefix("rooms/") {
                None => Ok(None),
                Some(n) => n
                    .parse()
                    .map(|n| Some(Room(n)))
                    .map_err(|_| Rejection::Custom(format!("bad room number {n:?}"))),
            }
        }
    }
    let at = |t: &'static str| MqttRequest::new(Message::new(t, ""));
    assert_eq!(Option::<Room>::from_message(&at("hall"), &()), Ok(None));
    assert_eq!(
        Option::<Room>::from_message(&at("rooms/4"), &()),
        Ok(Some(Room(4)))
    );
    assert!(matches!(
        Option::<Room>::from_message(&at("rooms/x"), &()),
        Err(Rejection::Custom(_))
    ));
}

async fn start_error(router: Router) -> RouterError {
    Mqtt::builder(embedded_config(Protocol::V311))
        .router(router)
        .start()
        .await
        .map(|_| panic!("the router must be refused"))
        .unwrap_or_else(|e| match e {
            StartError::Router(e) => e,
            other => panic!("expected a router error, got {other:?}"),
        })
}

/// Merging or nesting never drops a fallback, a rejection handler or a shared group silently.
#[tokio::test]
async fn merge_and_nest_refuse_to_drop_settings() {
    let fallback = || Router::new().fallback(|| async {});
    let e = start_error(fallback().merge(fallback())).await;
    assert_eq!(e, RouterError::MergedTwice(RouterSetting::Fallback));
    assert_eq!(
        e.to_string(),
        "both merged routers have a fallback; keep one"
    );

    let rejecting = || Router::new().on_rejection(|_, _| async {});
    let e = start_error(rejecting().merge(rejecting())).await;
    assert_eq!(e, RouterError::MergedTwice(RouterSetting::RejectionHandler));

    let e = start_error(Router::new().shared("a").merge(Router::new().shared("b"))).await;
    assert_eq!(
        e,
        RouterError::SharedGroups {
            ours: "a".into(),
            theirs: "b".into()
        }
    );

    let e = start_error(Router::new().nest("home", fallback().route("x", || async {}))).await;
    assert_eq!(
        e,
        RouterError::Nested {
            prefix: "home".into(),
            setting: RouterSetting::Fallback
        }
    );
    assert!(
        e.to_string()
            .contains("nested under \"home\" has a fallback"),
        "{e}"
    );

    let e = start_error(Router::new().nest("home", Router::new().shared("g"))).await;
    assert_eq!(
        e,
        RouterError::Nested {
            prefix: "home".into(),
            setting: RouterSetting::SharedGroup
        }
    );

    // The builder's own catch-all (`on_message`) and one router's fallback go together.
    let ok = Mqtt::builder(embedded_config(Protocol::V311))
        .on_message(|| async {})
        .router(fallback().merge(Router::new().route("a", || async {})))
        .start()
        .await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    // One fallback and one shared group on either side merge fine.
    let merged: Router = Router::new().shared("g").merge(fallback().shared("g"));
    assert!(Mqtt::builder(embedded_config(Protocol::V311))
        .router(merged)
        .start()
        .await
        .is_ok());
}

/// State still reaches handlers through `with_state` (a `Router<S>` becomes a `Router`).
#[tokio::test]
async fn state_binds_through_the_new_handler_trait() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = |State(s): State<Arc<Mutex<Vec<String>>>>, Json(r): Json<Reading>| async move {
        s.lock().unwrap().push(format!("{}", r.celsius));
    };
    let out = Handler::call(handler, req(r#"{"celsius": 3.5}"#), seen.clone()).await;
    assert_eq!(out.unwrap(), Outcome::Handled);
    assert_eq!(*seen.lock().unwrap(), ["3.5"]);
}
