//! `tpk-load soak`: a long run against the mock server while its intercepts
//! are replaced through the admin API, checking every answer.
//!
//! Two intercept sets alternate: A intercepts `x-dev: alice` with metadata
//! `set=A`, B intercepts `x-dev: bob` with metadata `set=B`. Every answer of
//! `/intercept-info` must be the answer of A or of B for that request; a
//! request that saw half of a replacement would get neither.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use serde_json::json;

use telepresence_api::CALLER_INTERCEPT_ID_HEADER;

use crate::connect;
use crate::report::Rss;

const CALLER: &str = "soak:orders";

#[derive(clap::Parser)]
pub struct SoakArgs {
    /// The mock server (client side, any intercepts: they are replaced)
    #[arg(long, default_value = "http://127.0.0.1:9980")]
    url: String,
    /// The admin API's token, if it needs one
    #[arg(long)]
    admin_token: Option<String>,
    /// Concurrent connections
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests to send
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// How often the intercepts are replaced
    #[arg(long, default_value = "100ms", value_parser = crate::parse_duration)]
    swap_every: Duration,
    /// Report the resident memory of this process before and after
    #[arg(long)]
    rss_pid: Option<u32>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

fn intercepts(set: &str, dev: &str) -> String {
    json!([{ "id": CALLER, "headers": { "x-dev": dev }, "metadata": { "set": set } }]).to_string()
}

/// The answers set A and set B give a request from `dev`.
fn allowed(dev: &str) -> [&'static str; 2] {
    let hit = |set: &str| match set {
        "A" => r#"{"intercepted":true,"clientSide":true,"metadata":{"set":"A"}}"#,
        _ => r#"{"intercepted":true,"clientSide":true,"metadata":{"set":"B"}}"#,
    };
    let miss = r#"{"intercepted":false,"clientSide":true}"#;
    match dev {
        "alice" => [hit("A"), miss],
        _ => [miss, hit("B")],
    }
}

struct Counts {
    issued: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    inconsistent: AtomicU64,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let uri: http::Uri = args.url.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("--url has no host"))?
        .to_string();
    let rss_before = args.rss_pid.map(Rss::of).transpose()?;
    let admin = Admin {
        authority: authority.clone(),
        token: args.admin_token.clone(),
    };
    admin.replace(&intercepts("A", "alice")).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let admin = admin.clone();
        let every = args.swap_every;
        tokio::spawn(async move {
            let mut swaps = 0u64;
            let mut failures = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                let body = if swaps % 2 == 0 {
                    intercepts("B", "bob")
                } else {
                    intercepts("A", "alice")
                };
                match admin.replace(&body).await {
                    Ok(()) => swaps += 1,
                    Err(_) => failures += 1,
                }
            }
            (swaps, failures)
        })
    };

    let counts = Arc::new(Counts {
        issued: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        inconsistent: AtomicU64::new(0),
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let counts = counts.clone();
            let authority = authority.clone();
            let limit = args.requests;
            tokio::spawn(async move {
                let mut sender = None;
                loop {
                    let n = counts.issued.fetch_add(1, Ordering::Relaxed);
                    if n >= limit {
                        return;
                    }
                    if sender.is_none() {
                        sender = connect(&authority).await.ok();
                    }
                    let Some(open) = sender.as_mut() else {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let dev = if n % 2 == 0 { "alice" } else { "bob" };
                    let request = Request::get("/intercept-info")
                        .header("host", &authority)
                        .header(CALLER_INTERCEPT_ID_HEADER, CALLER)
                        .header("x-dev", dev)
                        .body(Empty::<Bytes>::new())
                        .expect("a valid request");
                    let answer = async {
                        let response = open.send_request(request).await?;
                        let status = response.status();
                        let body = response.into_body().collect().await?.to_bytes();
                        anyhow::Ok((status, body))
                    }
                    .await;
                    match answer {
                        Ok((status, body)) if status == 200 => {
                            if allowed(dev).iter().any(|a| a.as_bytes() == body.as_ref()) {
                                counts.ok.fetch_add(1, Ordering::Relaxed);
                            } else {
                                counts.inconsistent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(_) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                            sender = None;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (swaps, swap_failures) = swapper.await?;
    let rss_after = args.rss_pid.map(Rss::of).transpose()?;

    let ok = counts.ok.load(Ordering::Relaxed);
    let errors = counts.errors.load(Ordering::Relaxed);
    let inconsistent = counts.inconsistent.load(Ordering::Relaxed);
    if args.json {
        let mut report = json!({
            "requests": ok + errors + inconsistent,
            "consistent": ok,
            "inconsistent": inconsistent,
            "errors": errors,
            "swaps": swaps,
            "swap_failures": swap_failures,
            "seconds": seconds,
            "rps": (ok + errors + inconsistent) as f64 / seconds,
        });
        if let (Some(before), Some(after)) = (rss_before, rss_after) {
            report["rss_kib"] = json!({ "before": before.kib, "after": after.kib });
        }
        println!("{report}");
    } else {
        println!(
            "{} requests in {seconds:.1} s ({:.0} req/s): {ok} consistent, {inconsistent} inconsistent, {errors} errors",
            ok + errors + inconsistent,
            (ok + errors + inconsistent) as f64 / seconds
        );
        println!("intercepts replaced {swaps} times ({swap_failures} failures)");
        if let (Some(before), Some(after)) = (rss_before, rss_after) {
            println!(
                "rss {:.1} MiB before, {:.1} MiB after",
                before.kib as f64 / 1024.0,
                after.kib as f64 / 1024.0
            );
        }
    }
    if inconsistent > 0 || errors > 0 || swap_failures > 0 {
        anyhow::bail!(
            "the soak found {inconsistent} inconsistent answers, {errors} errors, {swap_failures} failed swaps"
        );
    }
    Ok(())
}

/// The admin API, over one connection per call.
#[derive(Clone)]
struct Admin {
    authority: String,
    token: Option<String>,
}

impl Admin {
    async fn replace(&self, intercepts: &str) -> anyhow::Result<()> {
        let mut sender = connect(&self.authority).await?;
        let mut request = Request::put("/_mock/intercepts")
            .header("host", &self.authority)
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(intercepts.to_owned())))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        anyhow::ensure!(status == 200, "replacing the intercepts: {status}");
        Ok(())
    }
}
