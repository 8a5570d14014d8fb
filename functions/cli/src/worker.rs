//! The worker loop: one task per stage, receiving from its queue, running
//! `latentmint_stages::process_all` and settling each delivery, with a progress bar per stage.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use latentmint_core::Stage;
use latentmint_stages::{Disposition, Ports, process_all};
use tokio::sync::watch;
use tracing::warn;

use crate::workspace::{Fault, note_fault};

pub(crate) fn visibility(stage: Stage) -> Duration {
    match stage {
        // A real SD model on CPU can take minutes per image.
        Stage::Generate => Duration::from_secs(900),
        _ => Duration::from_secs(120),
    }
}

/// What the mint worker receives at most at once, and so mints together (`chain.batch_size`);
/// every other stage takes one message at a time.
pub(crate) fn receive_max(stage: Stage, batch: usize) -> usize {
    if stage == Stage::Mint { batch.max(1) } else { 1 }
}

/// The mint messages of one batch: after the first, more are gathered while jobs are still on
/// their way (some stage before the mint has work) until the batch is full, so a collection
/// run locally is minted in as few transactions as its batch size allows. A short pause with
/// nothing upstream ends the gathering, and it never lasts more than a minute.
pub(crate) async fn gather(
    ports: &Ports,
    mut got: Vec<latentmint_core::ports::Delivery>,
    batch: usize,
) -> Vec<latentmint_core::ports::Delivery> {
    let started = Instant::now();
    let mut quiet = 0;
    while got.len() < batch && quiet < 5 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let more = ports.queue.receive(Stage::Mint.queue(), batch - got.len(), visibility(Stage::Mint)).await;
        let more = more.unwrap_or_default();
        let mut upstream = false;
        for s in [Stage::Generate, Stage::Review, Stage::Publish] {
            upstream |= ports.queue.stats(s.queue()).await.is_ok_and(|st| st.visible + st.in_flight > 0);
        }
        quiet = if more.is_empty() && !upstream { quiet + 1 } else { 0 };
        got.extend(more);
    }
    got
}

/// One consumer of one stage queue, until `stop` turns true. A storage fault it meets is noted
/// in `fault`, which stops the run.
pub(crate) async fn worker(ports: Ports, stage: Stage, batch: usize, mut stop: watch::Receiver<bool>, fault: Fault) {
    let queue = ports.queue.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let deliveries = match queue.receive(stage.queue(), receive_max(stage, batch), visibility(stage)).await {
            Ok(d) => d,
            Err(e) => {
                note_fault(&fault, &e.to_string());
                warn!(queue = stage.queue(), "receive failed: {e}");
                Vec::new()
            }
        };
        if deliveries.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let deliveries =
            if receive_max(stage, batch) > 1 { gather(&ports, deliveries, batch).await } else { deliveries };
        let dispositions = process_all(&ports, stage, &deliveries, receive_max(stage, batch)).await;
        for (d, disposition) in deliveries.into_iter().zip(dispositions) {
            let result = match disposition {
                Disposition::Ack(_) => queue.ack(stage.queue(), &d.receipt).await,
                Disposition::Retry(delay, why) => {
                    note_fault(&fault, &why);
                    warn!(queue = stage.queue(), attempt = d.receive_count, "retrying in {delay:?}: {why}");
                    queue.nack(stage.queue(), &d.receipt, delay).await
                }
            };
            if let Err(e) = result {
                note_fault(&fault, &e.to_string());
                warn!(queue = stage.queue(), "could not settle a message (it will be redelivered): {e}");
            }
        }
    }
}

pub(crate) fn bar(mp: &MultiProgress, len: u64, label: &str) -> ProgressBar {
    let pb = mp.add(ProgressBar::new(len));
    pb.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:32.cyan/blue}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    pb
}
