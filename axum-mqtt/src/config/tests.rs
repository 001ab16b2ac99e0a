//! The key table, URLs, validation and serde, without a broker.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::message::QoS;

fn load(pairs: &[(&str, &str)]) -> Result<MqttConfig, ConfigError> {
    MqttConfig::from_pairs("MQTT", pairs.iter().copied())
}

#[test]
fn defaults_match_flask_mqtt() {
    let c = load(&[]).unwrap();
    assert_eq!(c.broker_url, "localhost");
    assert_eq!(c.broker_port, 1883);
    assert_eq!(c.keepalive, Duration::from_secs(60));
    assert!(c.clean_session);
    assert!(!c.tls.enabled);
    assert_eq!(c.transport, Transport::Tcp);
    assert_eq!(c.protocol, Protocol::V311);
    assert!(c.effective_client_id().unwrap().starts_with("axum-mqtt-"));
    assert_ne!(c.effective_client_id(), c.effective_client_id());
}

#[test]
#[cfg(all(feature = "tls", feature = "websocket"))]
fn every_key_is_read() {
    let c = load(&[
        ("MQTT_CLIENT_ID", "cid"),
        ("MQTT_BROKER_URL", "broker.local"),
        ("MQTT_BROKER_PORT", "1999"),
        ("MQTT_USERNAME", "u"),
        ("MQTT_PASSWORD", "p"),
        ("MQTT_KEEPALIVE", "5"),
        ("MQTT_CLEAN_SESSION", "false"),
        ("MQTT_TLS_ENABLED", "True"),
        ("MQTT_TLS_CA_CERTS", "/ca.pem"),
        ("MQTT_TLS_CERTFILE", "/c.pem"),
        ("MQTT_TLS_KEYFILE", "/c.key"),
        ("MQTT_TLS_INSECURE", "yes"),
        ("MQTT_TLS_VERSION", "PROTOCOL_TLSv1_2"),
        ("MQTT_LAST_WILL_TOPIC", "will/t"),
        ("MQTT_LAST_WILL_MESSAGE", "bye"),
        ("MQTT_LAST_WILL_QOS", "1"),
        ("MQTT_LAST_WILL_RETAIN", "1"),
        ("MQTT_TRANSPORT", "websockets"),
        ("MQTT_WS_PATH", "/ws"),
        ("MQTT_PROTOCOL", "5"),
        ("MQTT_SHARED_GROUP", "web"),
        ("MQTT_MAX_INFLIGHT", "7"),
        ("MQTT_MAX_PENDING", "9"),
        ("MQTT_MAX_PACKET_SIZE", "4096"),
        ("MQTT_RECONNECT_MIN_MS", "10"),
        ("MQTT_RECONNECT_MAX_MS", "20"),
        ("MQTT_HANDLER_CONCURRENCY", "3"),
        ("MQTT_HANDLER_QUEUE", "4"),
        ("OTHER_KEY", "ignored"),
    ])
    .unwrap();
    assert_eq!(c.client_id, "cid");
    assert_eq!(
        (c.broker_url.as_str(), c.broker_port),
        ("broker.local", 1999)
    );
    assert_eq!(
        (c.username.as_deref(), c.password.as_deref()),
        (Some("u"), Some("p"))
    );
    assert_eq!(c.keepalive, Duration::from_secs(5));
    assert!(!c.clean_session);
    assert!(c.tls.enabled && c.tls.insecure);
    assert_eq!(c.tls.ca_certs, Some(PathBuf::from("/ca.pem")));
    assert_eq!(c.tls.certfile, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.tls.keyfile, Some(PathBuf::from("/c.key")));
    assert_eq!(c.tls.version, Some(TlsVersion::Tls12));
    let w = c.last_will.unwrap();
    assert_eq!((w.topic.as_str(), w.message.as_str()), ("will/t", "bye"));
    assert_eq!((w.qos, w.retain), (QoS::AtLeastOnce, true));
    assert_eq!(c.transport, Transport::Websockets);
    assert_eq!(c.ws_path, "/ws");
    assert_eq!(c.protocol, Protocol::V5);
    assert_eq!(c.shared_group.as_deref(), Some("web"));
    assert_eq!(
        (c.max_inflight, c.max_pending, c.max_packet_size),
        (7, 9, 4096)
    );
    assert_eq!(
        (c.reconnect_min, c.reconnect_max),
        (Duration::from_millis(10), Duration::from_millis(20))
    );
    assert_eq!((c.handler_concurrency, c.handler_queue), (3, 4));
}

#[test]
fn bad_values_name_key_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("MQTT_BROKER_PORT", "0", "port"),
        ("MQTT_BROKER_PORT", "70000", "port"),
        ("MQTT_KEEPALIVE", "-1", "whole number"),
        ("MQTT_CLEAN_SESSION", "maybe", "true or false"),
        ("MQTT_TLS_ENABLED", "2", "true or false"),
        ("MQTT_TLS_VERSION", "1.1", "not supported"),
        ("MQTT_TLS_VERSION", "ssl3", "1.2 or 1.3"),
        ("MQTT_LAST_WILL_QOS", "3", "0, 1 or 2"),
        ("MQTT_TRANSPORT", "udp", "tcp"),
        ("MQTT_PROTOCOL", "6", "3.1.1"),
        ("MQTT_BROKER_URL", "http://x", "scheme"),
        ("MQTT_BROKER_URL", "mqtt://", "URL"),
        ("MQTT_BROKER_URL", "a b", "host name"),
        ("MQTT_MAX_INFLIGHT", "0", "at least 1"),
        ("MQTT_MAX_INFLIGHT", "70000", "1-65535"),
        ("MQTT_SHARED_GROUP", "a/b", "group"),
        ("MQTT_HANDLER_CONCURRENCY", "0", "1-1024"),
        ("MQTT_KEEPALIVE", "65536", "65535"),
        (
            "MQTT_CLIENT_ID",
            "web-{host}",
            "unknown placeholder `{host}`",
        ),
        ("MQTT_CLIENT_ID", "web-{pid", "without its `}`"),
        ("MQTT_CLIENT_ID", "web}", "without its `{`"),
    ];
    for (key, value, needle) in cases {
        let mut pairs = vec![(*key, *value)];
        if key.starts_with("MQTT_LAST_WILL_QOS") {
            pairs.push(("MQTT_LAST_WILL_TOPIC", "w"));
        }
        let e = load(&pairs).expect_err(key);
        assert_eq!(&e.key, key, "{e}");
        assert!(e.to_string().contains(value), "{e}");
        assert!(e.reason.contains(needle), "{key}={value}: {e}");
    }
    let e = load(&[("MQTT_CLEAN_SESSION", "0")]).unwrap_err();
    assert_eq!(e.key, "MQTT_CLEAN_SESSION");
    let e = load(&[
        ("MQTT_CLEAN_SESSION", "0"),
        ("MQTT_CLIENT_ID", "w-{random}"),
    ])
    .unwrap_err();
    assert_eq!(e.key, "MQTT_CLIENT_ID");
    assert!(e.reason.contains("persistent session"), "{e}");
    assert!(load(&[
        ("MQTT_CLEAN_SESSION", "0"),
        ("MQTT_CLIENT_ID", "w-{hostname}")
    ])
    .is_ok());
    let e = load(&[("MQTT_LAST_WILL_TOPIC", "a/#")]).unwrap_err();
    assert_eq!(e.key, "MQTT_LAST_WILL_TOPIC");
    let e = load(&[("MQTT_TLS_CERTFILE", "/c.pem")]).unwrap_err();
    assert_eq!(e.key, "MQTT_TLS_CERTFILE");
    // rumqttc's MQTT 5 client panics on a keepalive below 5 s: a config error instead.
    for ka in ["0", "1", "4"] {
        let e = load(&[("MQTT_PROTOCOL", "5"), ("MQTT_KEEPALIVE", ka)]).unwrap_err();
        assert_eq!((e.key.as_str(), e.value.as_str()), ("MQTT_KEEPALIVE", ka));
        assert!(e.reason.contains("MQTT 5"), "{e}");
        assert!(load(&[("MQTT_KEEPALIVE", ka)]).is_ok(), "3.1.1 allows {ka}");
    }
    assert!(load(&[("MQTT_PROTOCOL", "5"), ("MQTT_KEEPALIVE", "5")]).is_ok());
}

/// A template is kept as written in the config and filled in per client.
#[test]
fn client_id_templates() {
    let c = load(&[("MQTT_CLIENT_ID", "web-{hostname}-{pid}-{random}")]).unwrap();
    assert_eq!(c.client_id, "web-{hostname}-{pid}-{random}");
    let (a, b) = (
        c.effective_client_id().unwrap(),
        c.effective_client_id().unwrap(),
    );
    assert_ne!(a, b, "one random part per client");
    assert!(a.starts_with("web-"), "{a}");
    assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    assert!(!a.contains(['{', '}']), "{a}");
    let c = load(&[("MQTT_CLIENT_ID", "fixed")]).unwrap();
    assert_eq!(c.effective_client_id().unwrap(), "fixed");
}

#[test]
fn flask_mqtt_names() {
    let c = load(&[
        ("MQTT_PROTOCOL_VERSION", "5"),
        ("MQTT_TLS_CERT_REQS", "ssl.CERT_NONE"),
        ("MQTT_CONNECTION_TIMEOUT", "3"),
    ])
    .unwrap();
    assert_eq!(c.protocol, Protocol::V5);
    assert!(c.tls.insecure);
    assert_eq!(c.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        load(&[("MQTT_PROTOCOL_VERSION", "4")]).unwrap().protocol,
        Protocol::V311
    );
    let e = load(&[("MQTT_PROTOCOL_VERSION", "3")]).unwrap_err();
    assert_eq!(e.key, "MQTT_PROTOCOL_VERSION");
    assert!(e.reason.contains("3.1 is not supported"));
    let e = load(&[("MQTT_TLS_CERT_REQS", "sometimes")]).unwrap_err();
    assert_eq!(e.key, "MQTT_TLS_CERT_REQS");
    assert!(
        !load(&[
            ("MQTT_TLS_CERT_REQS", "CERT_REQUIRED"),
            ("MQTT_TLS_CIPHERS", "HIGH")
        ])
        .unwrap()
        .tls
        .insecure
    );
    assert_eq!(
        load(&[("MQTT_CONNECTION_TIMEOUT", "0")]).unwrap_err().key,
        "MQTT_CONNECTION_TIMEOUT"
    );
}

#[test]
fn prefix_selects_broker() {
    let pairs = [
        ("MQTT_BROKER_URL", "one"),
        ("MQTT2_BROKER_URL", "two"),
        ("MQTT2_BROKER_PORT", "x"),
    ];
    assert_eq!(
        MqttConfig::from_pairs("MQTT", pairs).unwrap().broker_url,
        "one"
    );
    let e = MqttConfig::from_pairs("MQTT2", pairs).unwrap_err();
    assert_eq!(e.key, "MQTT2_BROKER_PORT");
}

#[test]
fn urls() {
    let c = MqttConfig::from_url("mqtt://us%40er:p%3Ass@h:1234").unwrap();
    assert_eq!((c.broker_url.as_str(), c.broker_port), ("h", 1234));
    assert_eq!(
        (c.username.as_deref(), c.password.as_deref()),
        (Some("us@er"), Some("p:ss"))
    );
    let c = MqttConfig::from_url("mqtts://h").unwrap();
    assert!(c.tls.enabled);
    assert_eq!(c.broker_port, 8883);
    let c = MqttConfig::from_url("ws://h:9001").unwrap();
    assert_eq!(
        (c.transport, c.broker_port, c.ws_path.as_str()),
        (Transport::Websockets, 9001, "/mqtt")
    );
    let c = MqttConfig::from_url("mqtt://[::1]:1883").unwrap();
    assert_eq!(c.broker_url, "::1");
    // A separate BROKER_PORT applies when the URL has none.
    let c = load(&[
        ("MQTT_BROKER_URL", "mqtt://h"),
        ("MQTT_BROKER_PORT", "2000"),
    ])
    .unwrap();
    assert_eq!(c.broker_port, 2000);
    let e = load(&[("MQTT_PASSWORD", "x"), ("MQTT_BROKER_URL", "mqtt://a b")]).unwrap_err();
    assert_eq!(e.key, "MQTT_BROKER_URL");
}

#[test]
fn serde_round_trip() {
    let c: MqttConfig = serde_json::from_str(
        r#"{"broker_url":"b","protocol":"5","transport":"websockets","tls":{"enabled":true,"version":"1.3"},
            "last_will":{"topic":"w","qos":2}}"#,
    )
    .unwrap();
    assert_eq!(c.protocol, Protocol::V5);
    assert_eq!(c.tls.version, Some(TlsVersion::Tls13));
    assert_eq!(c.last_will.as_ref().unwrap().qos, QoS::ExactlyOnce);
    let back: MqttConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

/// The docs table is generated from the key table; `UPDATE_DOCS=1 cargo test -p axum-mqtt --lib
/// config` rewrites it after a key changes.
#[test]
fn docs_table_matches_the_key_table() {
    crate::generated_docs::assert_current("config_keys.md", &keys::markdown());
}

#[test]
fn every_key_is_documented_once() {
    let names: Vec<&str> = MqttConfig::keys().collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a key is listed twice");
    let doc = keys::markdown();
    for k in names {
        assert_eq!(doc.matches(&format!("| `{k}` |")).count(), 1, "{k}");
    }
}

#[test]
fn debug_masks_the_password() {
    let c = load(&[("MQTT_PASSWORD", "hunter2"), ("MQTT_USERNAME", "u")]).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("password: Some(\"***\")"), "{shown}");
    assert!(shown.contains("username: Some(\"u\")"), "{shown}");
}

#[test]
fn empty_values_leave_the_default() {
    let c = load(&[
        ("MQTT_CLEAN_SESSION", ""),
        ("MQTT_KEEPALIVE", " "),
        ("MQTT_BROKER_PORT", ""),
    ])
    .unwrap();
    assert!(c.clean_session);
    assert_eq!(c.keepalive, Duration::from_secs(60));
    assert_eq!(c.broker_port, 1883);
}

/// Without the `tls` / `websocket` features, asking for them is a config error naming the key.
#[test]
#[cfg(not(all(feature = "tls", feature = "websocket")))]
fn missing_features_are_config_errors() {
    if !cfg!(feature = "tls") {
        let e = load(&[("MQTT_TLS_ENABLED", "true")]).unwrap_err();
        assert_eq!(e.key, "MQTT_TLS_ENABLED");
        assert!(e.reason.contains("feature `tls`"), "{e}");
        let e = load(&[("MQTT_BROKER_URL", "mqtts://broker")]).unwrap_err();
        assert_eq!(e.key, "MQTT_TLS_ENABLED");
    }
    if !cfg!(feature = "websocket") {
        let e = load(&[("MQTT_TRANSPORT", "websockets")]).unwrap_err();
        assert_eq!(e.key, "MQTT_TRANSPORT");
        assert!(e.reason.contains("feature `websocket`"), "{e}");
    }
    assert!(load(&[("MQTT_BROKER_URL", "mqtt://broker:1884")]).is_ok());
}

#[test]
fn broker_lists() {
    let c = load(&[(
        "MQTT_BROKER_URL",
        "mqtt://a:1884, mqtt://b ,tcp://[::1]:1999",
    )])
    .unwrap();
    assert_eq!((c.broker_url.as_str(), c.broker_port), ("a", 1884));
    assert_eq!(
        c.failover,
        [BrokerAddr::new("b", 1883), BrokerAddr::new("::1", 1999)]
    );
    let names: Vec<String> = c.brokers().iter().map(ToString::to_string).collect();
    assert_eq!(names, ["a:1884", "b:1883", "[::1]:1999"]);
    // BROKER_PORT fills in every entry without a port; host names all take it.
    #[cfg(feature = "tls")]
    {
        let c = load(&[
            ("MQTT_BROKER_URL", "mqtts://a,mqtts://b:9000"),
            ("MQTT_BROKER_PORT", "8884"),
        ])
        .unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.brokers(), [("a", 8884).into(), ("b", 9000).into()]);
    }
    let c = load(&[("MQTT_BROKER_URL", "a,b"), ("MQTT_BROKER_PORT", "1999")]).unwrap();
    assert_eq!(c.brokers(), [("a", 1999).into(), ("b", 1999).into()]);
    let c = load(&[("MQTT_BROKER_URL", "a,b")]).unwrap();
    assert_eq!(c.brokers(), [("a", 1883).into(), ("b", 1883).into()]);
    #[cfg(feature = "websocket")]
    {
        // Credentials and the path of the first apply to all; repeating them is fine.
        let c = load(&[(
            "MQTT_BROKER_URL",
            "ws://u:p@a:80/ws,ws://u:p@b/ws,ws://c:81",
        )])
        .unwrap();
        assert_eq!(c.transport, Transport::Websockets);
        assert_eq!(
            (
                c.username.as_deref(),
                c.password.as_deref(),
                c.ws_path.as_str()
            ),
            (Some("u"), Some("p"), "/ws")
        );
        assert_eq!(c.failover, [("b", 80).into(), ("c", 81).into()]);
    }
    // A single URL clears a list set before.
    assert!(load(&[("MQTT_BROKER_URL", "mqtt://a")])
        .unwrap()
        .failover
        .is_empty());
}

#[test]
fn bad_broker_lists_name_key_and_entry() {
    let cases: &[(&str, &str, &str)] = &[
        ("mqtt://a,mqtts://b", "mqtts://b", "same form"),
        ("mqtt://a,ws://b", "ws://b", "same form"),
        ("mqtt://a,b", "b", "same form"),
        ("a,mqtt://b", "mqtt://b", "same form"),
        (
            "mqtt://u:p@a,mqtt://v:secret@b",
            "mqtt://v:***@b",
            "credentials",
        ),
        ("ws://a/one,ws://b/two", "ws://b/two", "WebSocket path"),
        ("mqtt://a,http://b", "http://b", "scheme"),
        ("mqtt://a,,mqtt://b", "mqtt://a,,mqtt://b", "empty entry"),
        ("mqtt://a,", "mqtt://a,", "empty entry"),
        ("mqtt://a,b c", "b c", "host name"),
    ];
    for (list, entry, needle) in cases {
        let e = load(&[("MQTT_BROKER_URL", list)]).expect_err(list);
        assert_eq!(e.key, "MQTT_BROKER_URL", "{e}");
        assert_eq!(&e.value, entry, "{list}: {e}");
        assert!(e.reason.contains(needle), "{list}: {e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
    let e = MqttConfig::from_url("mqtt://a,ws://b").unwrap_err();
    assert_eq!((e.key.as_str(), e.value.as_str()), ("MQTT_URL", "ws://b"));
}

#[test]
fn broker_lists_in_code_and_serde() {
    let c = MqttConfig::new("a", 1).with_brokers([("b", 2), ("c", 3)]);
    assert_eq!(c.brokers(), [("b", 2).into(), ("c", 3).into()]);
    assert_eq!(c.clone().with_brokers(Vec::<BrokerAddr>::new()), c);
    let mut bad = c.clone();
    bad.failover.push(BrokerAddr::new("d", 0));
    let e = bad.validate().unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.value.as_str()),
        ("MQTT_BROKER_URL", "d:0")
    );
    bad.failover = vec![BrokerAddr::new(" ", 1)];
    assert_eq!(bad.validate().unwrap_err().key, "MQTT_BROKER_URL");

    let c: MqttConfig = serde_json::from_str(
        r#"{"broker_url":"a","failover":[{"host":"b","port":1884},{"host":"::1","port":1885}]}"#,
    )
    .unwrap();
    assert_eq!(
        c.brokers(),
        [("a", 1883).into(), ("b", 1884).into(), ("::1", 1885).into()]
    );
    let back: MqttConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    assert!(format!("{c:?}").contains("failover"));
}
