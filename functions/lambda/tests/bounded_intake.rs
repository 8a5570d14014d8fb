//! The intake function answers the largest body it accepts (256 KiB) that asks for millions of
//! jobs with 413, before any job is made, in bounded memory: a counting allocator (this test
//! binary's global allocator) measures the peak the request adds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use latentmint_core::EvmAddress;
use latentmint_embedded::{SqliteJobStore, SqliteQueue};
use latentmint_lambda::intake::{MAX_BODY_BYTES, StackChain, submit_text};
use latentmint_stages::ports::Intake;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts bytes around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a pointer System.alloc gave for this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[tokio::test]
async fn a_quarter_megabyte_asking_for_millions_of_jobs_is_answered_413_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let jobs = Arc::new(SqliteJobStore::open(&db).unwrap());
    let ports = Intake { queue: Arc::new(SqliteQueue::open(&db, 5).unwrap()), jobs: jobs.clone() };
    let stack = StackChain {
        chain_id: 412_346,
        contract: EvmAddress::from_bytes([0x11; 20]),
        editions: None,
        living: None,
        mint_batch: 1,
    };
    // As many prompts of 1,000 copies as fit in the largest body accepted.
    let mut body = String::from(
        "[collection]\nname = \"Flood\"\nsymbol = \"FLD\"\nrecipient = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n[generation]\nmodel = \"m\"\n",
    );
    let prompt = "[[prompts]]\ntext = \"x\"\ncount = 1000\n";
    while body.len() + prompt.len() <= MAX_BODY_BYTES {
        body.push_str(prompt);
    }
    let asked = (body.matches("[[prompts]]").count() * 1000) as u64;
    assert!(asked > 7_000_000, "{asked}");

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let refused = submit_text(&ports, &stack, &body, false).await.unwrap_err();
    let peak = PEAK.load(Ordering::Relaxed) - before;

    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(refused.field.as_deref(), Some("prompts"));
    assert!(refused.error.contains(&format!("asks for {asked} jobs")), "{refused:?}");
    // The parsed file is a few MiB at most; 7 million job specs would be gigabytes.
    assert!(peak < 32 * 1024 * 1024, "the refusal took {} MiB", peak / (1024 * 1024));
    use latentmint_core::ports::JobStore;
    assert!(jobs.list(None).await.unwrap().is_empty(), "no job was made");
}
