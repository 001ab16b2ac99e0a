//! The configuration parser: `KEY=VALUE` lines (lossy UTF-8) through `MqttConfig::from_pairs`,
//! the whole input through `MqttConfig::from_url`. Errors must name an `MQTT_` key; accepted
//! configs must validate.
#![no_main]

use axum_mqtt::MqttConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            // Short keys are prefixed, so most lines reach a real key.
            let k = if k.starts_with("MQTT") {
                k.to_string()
            } else {
                format!("MQTT_{k}")
            };
            (k, v.to_string())
        })
        .collect();
    match MqttConfig::from_pairs("MQTT", pairs) {
        Ok(cfg) => assert!(
            cfg.validate().is_ok(),
            "accepted an invalid config: {cfg:?}"
        ),
        Err(e) => {
            assert!(e.key.starts_with("MQTT_"), "{e:?}");
            assert!(e.to_string().starts_with(&e.key), "{e}");
        }
    }
    if let Ok(cfg) = MqttConfig::from_url(&text) {
        assert!(!cfg.broker_url.is_empty(), "{text:?}");
    }
});
