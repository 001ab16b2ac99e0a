//! Topic matching and extraction micro-benchmarks (filled in by the benchmarks issue).
use criterion::{criterion_group, criterion_main, Criterion};

fn matcher(c: &mut Criterion) {
    let p = axum_mqtt::topic::TopicPattern::parse("sensors/{device}/temperature").unwrap();
    c.bench_function("match one pattern", |b| b.iter(|| p.matches("sensors/kitchen/temperature")));
}

criterion_group!(benches, matcher);
criterion_main!(benches);
