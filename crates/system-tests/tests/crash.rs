#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A process appending steps to a conversation is killed with SIGKILL at random moments,
//! [`KILLS`] times (at least [`MIN_KILLS`] within [`TIME_BOUND`]) on the same database
//! file. After every kill the file passes `PRAGMA integrity_check`, the conversation's seqs
//! are exactly `1..=N`, the stored history is whole drill steps (a step killed mid-append is
//! all there or not at all), every step the child reported as committed is there with
//! exactly its content at its reported seqs, at most the one step in flight was committed
//! without being reported, the metadata written in the same transaction is there, and the
//! repaired load is provider-valid (and, the steps being whole, needs no repair at all).
//!
//! The kill moments come from a seeded xorshift; the seed is printed (shown on failure) and
//! `DISPATCH_CRASH_SEED=<seed>` replays the same schedule of delays (where in the child's
//! work a delay lands still depends on the machine). The child is `src/bin/crash-child.rs`;
//! the only sleeps here are those random delays, the child is waited for through its output.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dispatch_conversation_store::repair::check_provider_valid;
use dispatch_kernel::abi::{ConversationStore, HistoryWindow};
use dispatch_system_tests::{Db, drill};
use tempfile::TempDir;

/// Kills the test needs.
const MIN_KILLS: usize = 50;
/// Kills the test does when they fit in [`TIME_BOUND`] (about 5 s on 2 cores).
const KILLS: usize = 100;
/// Stop killing after this long (the test then fails if it has fewer than `MIN_KILLS`).
const TIME_BOUND: Duration = Duration::from_secs(120);
/// How long a child may take to open the database and say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const SIGKILL: i32 = 9;

/// A tiny xorshift64 generator: reproducible kill moments without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so small and zero seeds still give a good, non-zero state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Kills the child however the test ends, so a failing assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// When a round's kill lands.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after spawning, without waiting for the child: usually while it starts
    /// up or opens the database (possibly while it creates the schema, in round 0).
    Startup(Duration),
    /// This long after the child said `ready`: usually mid-append or between appends.
    Running(Duration),
}

impl KillAt {
    fn pick(rng: &mut XorShift) -> KillAt {
        if rng.below(5) == 0 {
            KillAt::Startup(Duration::from_micros(rng.below(4_000)))
        } else {
            KillAt::Running(Duration::from_micros(rng.below(10_000)))
        }
    }
}

/// What a killed child said before dying.
struct Round {
    /// `(step, first seq, last seq)` per `committed` line, in order.
    committed: Vec<(u64, u64, u64)>,
    ready: Option<u64>,
}

fn run_child(db: &Path, stderr: &Path, kill_at: KillAt, ctx: &str) -> Round {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_crash-child"))
            .arg(db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                // A line cut by the kill has no newline: it was never fully reported.
                Ok(_) if line.ends_with('\n') => {
                    if lines_tx.send(line.trim_end().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) | Err(_) => break,
            }
        }
    });

    let mut early = Vec::new();
    match kill_at {
        KillAt::Startup(delay) => std::thread::sleep(delay),
        KillAt::Running(delay) => {
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) => {
                        let ready = line.starts_with("ready ");
                        early.push(line);
                        if ready {
                            break;
                        }
                    }
                    Err(err) => panic!(
                        "{ctx}: no `ready` from the child ({err}); stderr:\n{}",
                        std::fs::read_to_string(stderr).unwrap_or_default()
                    ),
                }
            }
            std::thread::sleep(delay);
        }
    }
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{ctx}: the child ended before the kill ({status}); stderr:\n{}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );

    let mut round = Round {
        committed: Vec::new(),
        ready: None,
    };
    for line in early.into_iter().chain(lines.try_iter()) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["ready", step] => round.ready = Some(step.parse().unwrap()),
            ["committed", step, first, last] => round.committed.push((
                step.parse().unwrap(),
                first.parse().unwrap(),
                last.parse().unwrap(),
            )),
            _ => panic!("{ctx}: unexpected line from the child: {line:?}"),
        }
    }
    round
}

/// Checks the file after a kill; returns the last stored step. `before` is the last step
/// stored before the round.
async fn verify(db: &Path, before: Option<u64>, round: &Round, ctx: &str) -> Option<u64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(integrity, ["ok"], "{ctx}: integrity_check");
    drop(conn);

    let opened = Db::open(db).await.unwrap();
    let store = &opened.store;
    let page = store
        .window(drill::CONVERSATION, HistoryWindow::default())
        .await
        .unwrap();
    let seqs: Vec<u64> = page.chunks.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=page.last_seq).collect::<Vec<_>>(),
        "{ctx}: seqs are exactly 1..=N (a row that does not parse would leave a gap)"
    );

    // Whole steps only: the stored history is steps 0..=last exactly, so a step killed
    // mid-append is entirely absent (else the last chunk's step would be cut short).
    let last = page.chunks.last().map(|c| drill::step_of(c).unwrap());
    let mut stored = page.chunks.clone();
    for chunk in &mut stored {
        chunk.created_at = 0;
    }
    let expected = drill::chunks_through(last);
    if stored != expected {
        let at = stored
            .iter()
            .zip(&expected)
            .position(|(s, e)| s != e)
            .unwrap_or(stored.len().min(expected.len()));
        panic!(
            "{ctx}: the stored history is not whole steps 0..={last:?} ({} chunks stored, \
             {} expected); first difference at index {at}:\n stored   {:?}\n expected {:?}",
            stored.len(),
            expected.len(),
            stored.get(at),
            expected.get(at)
        );
    }

    // The child continued right after what was stored, and said so.
    let next = before.map_or(0, |b| b + 1);
    if let Some(ready) = round.ready {
        assert_eq!(ready, next, "{ctx}: the child's first step");
    }
    let mut acknowledged = before;
    for &(step, first, last_seq) in &round.committed {
        assert_eq!(
            Some(step),
            Some(acknowledged.map_or(0, |a| a + 1)),
            "{ctx}: steps are reported in order"
        );
        assert_eq!(
            first..=last_seq,
            drill::seqs(step),
            "{ctx}: the seqs reported for step {step}"
        );
        acknowledged = Some(step);
    }
    // Every acknowledged step is stored (its content and seqs are checked above, as part
    // of steps 0..=last), and at most the step in flight at the kill was committed
    // without its acknowledgement being printed.
    assert!(
        last >= acknowledged,
        "{ctx}: acknowledged step {acknowledged:?} lost; stored through {last:?}"
    );
    let in_flight = acknowledged.map_or(0, |a| a + 1);
    assert!(
        last <= Some(in_flight),
        "{ctx}: stored through {last:?}, but only {acknowledged:?} was acknowledged"
    );

    // The metadata is written in the same transaction as the first step.
    let meta = store.meta(drill::CONVERSATION).await.unwrap();
    assert_eq!(
        meta.map(|m| m.title),
        last.map(|_| drill::REQUEST.to_owned()),
        "{ctx}: metadata"
    );

    let history = store.load(drill::CONVERSATION).await.unwrap();
    if let Err(problem) = check_provider_valid(&history.messages) {
        panic!("{ctx}: the loaded history is not provider-valid: {problem}");
    }
    dispatch_test_support::check_history(&history.messages);
    assert!(
        history.repair.is_clean(),
        "{ctx}: whole steps need no repair: {:?}",
        history.repair
    );
    assert_eq!(history.last_seq, page.last_seq, "{ctx}: load's last seq");
    assert!(
        history.messages == drill::messages_through(last),
        "{ctx}: the loaded messages are not steps 0..={last:?}"
    );
    opened.close().await;
    last
}

#[test]
fn sigkill_at_random_moments_never_loses_or_tears_a_committed_step() {
    let seed = match std::env::var("DISPATCH_CRASH_SEED") {
        Ok(seed) => seed.parse().expect("DISPATCH_CRASH_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    println!("crash test seed {seed} (replay: DISPATCH_CRASH_SEED={seed})");
    let mut rng = XorShift::new(seed);
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("dispatch.db");
    let stderr = dir.path().join("crash-child.stderr");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut kills = 0;
    let mut last = None;
    let (mut acknowledged_steps, mut unacknowledged_commits, mut empty_rounds) = (0, 0, 0);
    while kills < KILLS && started.elapsed() < TIME_BOUND {
        let kill_at = KillAt::pick(&mut rng);
        let ctx = format!("seed {seed}, kill {kills} ({kill_at:?})");
        let round = run_child(&db, &stderr, kill_at, &ctx);
        kills += 1;
        let before = last;
        last = runtime.block_on(verify(&db, before, &round, &ctx));
        acknowledged_steps += round.committed.len();
        let acknowledged = round.committed.last().map(|c| c.0).or(before);
        if last != acknowledged {
            unacknowledged_commits += 1;
        }
        if last == before {
            empty_rounds += 1;
        }
    }
    println!(
        "{kills} kills in {:.1?}: {acknowledged_steps} steps acknowledged, stored through step \
         {last:?}; {unacknowledged_commits} kills landed between a commit and its \
         acknowledgement, {empty_rounds} rounds committed nothing",
        started.elapsed()
    );
    assert!(
        kills >= MIN_KILLS,
        "seed {seed}: only {kills} kills within {TIME_BOUND:?}"
    );
    assert!(
        last.is_some_and(|l| l >= 20),
        "seed {seed}: the children barely appended (stored through step {last:?})"
    );
}
