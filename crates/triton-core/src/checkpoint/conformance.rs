//! The behaviour every [`CheckpointStore`] and [`IntentStore`] must have, as a
//! test suite that backend crates run against their real databases (feature
//! `test-util`).
//!
//! Each function panics with a message naming the broken rule. They use the
//! client names they are given, so several suites can share one database.

use std::sync::Arc;

use super::{
    unix_now, Checkpoint, CheckpointStore, IntentId, IntentStore, ReplayEnd, ReplayPosition,
    ReplayState, ReplayStore, SubCheckpoint, UploadIntent,
};
use crate::source::SequenceNumber;

/// A 56-digit sequence number ending in `n`, as Kinesis writes them.
pub fn sequence(n: u64) -> SequenceNumber {
    let s = format!("4959033827149025660855969254077942273515083440{n:010}");
    SequenceNumber::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn checkpoint(client: &str, stream: &str, shard: &str, n: u64) -> Checkpoint {
    Checkpoint {
        client: client.into(),
        stream: stream.into(),
        shard: shard.into(),
        sequence: sequence(n),
    }
}

/// Runs every single-task check with clients whose names start with `prefix`.
pub async fn run(store: &dyn CheckpointStore, prefix: &str) {
    unknown_shards_have_no_checkpoint(store, &format!("{prefix}none")).await;
    saves_replace_and_keep_the_exact_digits(store, &format!("{prefix}one")).await;
    save_many_saves_all_and_list_is_ordered(store, &format!("{prefix}many")).await;
    subsequences_are_kept_beside_checkpoints(store, &format!("{prefix}sub")).await;
}

/// Sub-sequence checkpoints (inside aggregated records) are read back
/// exactly, replace the shard's earlier one, belong to their client, and
/// never touch the checkpoints.
pub async fn subsequences_are_kept_beside_checkpoints(store: &dyn CheckpointStore, client: &str) {
    let sub = |shard: &str, n, sub| SubCheckpoint {
        client: client.into(),
        stream: "stream-a".into(),
        shard: shard.into(),
        sequence: sequence(n),
        sub,
    };
    assert!(store
        .subsequences(client)
        .await
        .expect("subsequences")
        .is_empty());
    store
        .save_subsequences(&[sub("shardId-1", 5, 3), sub("shardId-0", 4, u32::MAX)])
        .await
        .expect("save_subsequences");
    store
        .save_subsequences(&[sub("shardId-1", 6, 0)])
        .await
        .expect("save_subsequences again");
    let mut got = store.subsequences(client).await.expect("subsequences");
    got.sort_by(|a, b| a.shard.cmp(&b.shard));
    assert_eq!(
        got,
        vec![sub("shardId-0", 4, u32::MAX), sub("shardId-1", 6, 0)]
    );
    assert!(
        store
            .subsequences(&format!("{client}-other"))
            .await
            .expect("subsequences")
            .is_empty(),
        "another client's"
    );
    assert!(
        store.list(client).await.expect("list").is_empty(),
        "a sub-sequence is not a checkpoint"
    );
}

/// Nothing saved: `last` is `None` and `list` is empty.
pub async fn unknown_shards_have_no_checkpoint(store: &dyn CheckpointStore, client: &str) {
    let last = store.last(client, "s", "shardId-0").await.expect("last");
    assert_eq!(last, None, "a shard never saved has no checkpoint");
    assert!(store.list(client).await.expect("list").is_empty());
}

/// A save is read back digit for digit, a second save replaces it, and
/// `updated` is the time of the save.
pub async fn saves_replace_and_keep_the_exact_digits(store: &dyn CheckpointStore, client: &str) {
    let first = checkpoint(client, "stream-a", "shardId-000000000000", 1);
    let before = unix_now();
    store.save(&first).await.expect("save");
    let last = store.last(client, "stream-a", "shardId-000000000000").await;
    assert_eq!(last.expect("last"), Some(first.sequence.clone()));

    // Smaller as a string, larger as a number: must simply replace.
    let mut second = first.clone();
    second.sequence = SequenceNumber::new(format!("{}0", first.sequence)).expect("digits");
    store.save(&second).await.expect("save again");
    let last = store.last(client, "stream-a", "shardId-000000000000").await;
    assert_eq!(last.expect("last"), Some(second.sequence.clone()));

    let list = store.list(client).await.expect("list");
    assert_eq!(list.len(), 1, "one row per shard: {list:?}");
    assert_eq!(list[0].checkpoint, second);
    let after = unix_now();
    assert!(
        (before..=after).contains(&list[0].updated),
        "updated {} is not the time of the save ({before}..={after})",
        list[0].updated
    );
    // Other streams and shards are separate rows.
    assert_eq!(
        store
            .last(client, "stream-b", "shardId-000000000000")
            .await
            .expect("last"),
        None
    );
    assert_eq!(
        store
            .last(client, "stream-a", "shardId-000000000001")
            .await
            .expect("last"),
        None
    );
}

/// `save_many` of 100 shards over two streams: all saved; `list` returns
/// only this client's rows, ordered by stream then shard.
pub async fn save_many_saves_all_and_list_is_ordered(store: &dyn CheckpointStore, client: &str) {
    let other = format!("{client}-other");
    store
        .save(&checkpoint(&other, "b", "shard", 7))
        .await
        .expect("save other client");
    // Written in reverse, so ordering comes from `list`.
    let batch: Vec<Checkpoint> = (0..100)
        .rev()
        .map(|i| {
            checkpoint(
                client,
                ["b", "a"][i % 2],
                &format!("shardId-{i:012}"),
                i as u64,
            )
        })
        .collect();
    store.save_many(&batch).await.expect("save_many");
    store.save_many(&[]).await.expect("save_many of nothing");

    let list = store.list(client).await.expect("list");
    let mut want: Vec<Checkpoint> = batch.clone();
    want.sort_by(|x, y| (&x.stream, &x.shard).cmp(&(&y.stream, &y.shard)));
    let got: Vec<Checkpoint> = list.into_iter().map(|s| s.checkpoint).collect();
    assert_eq!(got, want, "list after save_many");

    // A second save_many updates in place.
    let again: Vec<Checkpoint> = batch
        .iter()
        .map(|c| Checkpoint {
            sequence: sequence(1000),
            ..c.clone()
        })
        .collect();
    store.save_many(&again).await.expect("save_many again");
    let list = store.list(client).await.expect("list");
    assert_eq!(list.len(), 100);
    assert!(list.iter().all(|s| s.checkpoint.sequence == sequence(1000)));
}

/// Many tasks save at once, each to its own shard and all to one shared
/// shard: no save fails, each own shard ends at its last value, and the
/// shared shard holds one of the values written to it.
pub async fn concurrent_saves(store: Arc<dyn CheckpointStore>, client: &str) {
    const TASKS: u64 = 16;
    const SAVES: u64 = 20;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        let client = client.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in 1..=SAVES {
                let own = checkpoint(&client, "s", &format!("own-{t}"), i);
                let shared = checkpoint(&client, "s", "shared", t * 1000 + i);
                if i % 2 == 0 {
                    store.save_many(&[own, shared]).await
                } else {
                    match store.save(&own).await {
                        Ok(()) => store.save(&shared).await,
                        Err(e) => Err(e),
                    }
                }
                .unwrap_or_else(|e| panic!("task {t} save {i}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    for t in 0..TASKS {
        let last = store
            .last(client, "s", &format!("own-{t}"))
            .await
            .expect("last");
        assert_eq!(last, Some(sequence(SAVES)), "shard own-{t}");
    }
    let shared = store
        .last(client, "s", "shared")
        .await
        .expect("last")
        .expect("saved");
    let written = (0..TASKS).any(|t| (1..=SAVES).any(|i| sequence(t * 1000 + i) == shared));
    assert!(written, "shared shard holds {shared}, which nobody wrote");
    assert_eq!(
        store.list(client).await.expect("list").len(),
        TASKS as usize + 1
    );
}

fn intent(client: &str, stream: &str, key: &str, document: &str) -> UploadIntent {
    UploadIntent {
        client: client.into(),
        stream: stream.into(),
        key: key.into(),
        document: document.into(),
    }
}

/// The intent `key` of `client` on stream "s".
fn id<'a>(client: &'a str, key: &'a str) -> IntentId<'a> {
    IntentId {
        client,
        stream: "s",
        key,
    }
}

/// The keys of the intents of `client` on stream "s", in the store's order.
async fn intent_keys(store: &dyn IntentStore, client: &str) -> Vec<String> {
    store
        .intents(client, "s")
        .await
        .unwrap_or_else(|e| panic!("intents: {e}"))
        .into_iter()
        .map(|i| i.key)
        .collect()
}

/// Upload intents: recorded, listed per client and stream by key, replaced
/// by key or by `replaces`, and completed together with their checkpoints,
/// all or nothing.
pub async fn intents(store: &dyn IntentStore, client: &str) {
    let keys = ["20261129/s-c-1764400001.tri", "20261129/s-c-1764400000.tri"];
    for key in keys {
        store
            .record_intent(&intent(client, "s", key, "{}"), None)
            .await
            .unwrap_or_else(|e| panic!("record_intent: {e}"));
    }
    store
        .record_intent(&intent(client, "other", keys[0], "{}"), None)
        .await
        .unwrap_or_else(|e| panic!("record_intent: {e}"));
    // A document of 100 shards of 56-digit numbers is ~20 kB: no column limit.
    let big = "x".repeat(100_000);
    store
        .record_intent(&intent(client, "s", keys[0], &big), None)
        .await
        .unwrap_or_else(|e| panic!("record_intent again: {e}"));
    let listed = store
        .intents(client, "s")
        .await
        .unwrap_or_else(|e| panic!("intents: {e}"));
    let want = vec![
        intent(client, "s", keys[1], "{}"),
        intent(client, "s", keys[0], &big),
    ];
    if listed != want {
        panic!("intents after recording: {listed:?}");
    }

    // Moving an archive to another key replaces its intent in one step.
    let moved = "20261129/s-c-1764400002.tri";
    store
        .record_intent(&intent(client, "s", moved, "moved"), Some(keys[0]))
        .await
        .unwrap_or_else(|e| panic!("record_intent replacing: {e}"));
    let listed = intent_keys(store, client).await;
    if listed != [keys[1], moved] {
        panic!("intents after a move: {listed:?}");
    }

    // A completion whose checkpoints cannot be saved changes nothing.
    let bad = Checkpoint {
        client: String::new(),
        ..checkpoint(client, "s", "shardId-0", 5)
    };
    let good = checkpoint(client, "s", "shardId-1", 5);
    if store
        .complete_intent(id(client, keys[1]), &[good.clone(), bad])
        .await
        .is_ok()
    {
        panic!("a completion with an unsavable checkpoint succeeded");
    }
    let still = store
        .intents(client, "s")
        .await
        .unwrap_or_else(|e| panic!("intents: {e}"));
    let saved = store
        .last(client, "s", "shardId-1")
        .await
        .unwrap_or_else(|e| panic!("last: {e}"));
    if still.len() != 2 || saved.is_some() {
        panic!(
            "a failed completion left {} intents and checkpoint {saved:?}",
            still.len()
        );
    }

    store
        .complete_intent(id(client, keys[1]), std::slice::from_ref(&good))
        .await
        .unwrap_or_else(|e| panic!("complete_intent: {e}"));
    let left = intent_keys(store, client).await;
    let saved = store
        .last(client, "s", "shardId-1")
        .await
        .unwrap_or_else(|e| panic!("last: {e}"));
    if left != [moved] || saved != Some(good.sequence.clone()) {
        panic!("after completion: intents {left:?}, checkpoint {saved:?}");
    }
    // Completing never moves a checkpoint back: shardId-1 is at 5, a
    // completion naming 3 leaves it there and still deletes the intent.
    store
        .complete_intent(
            id(client, moved),
            &[
                checkpoint(client, "s", "shardId-1", 3),
                checkpoint(client, "s", "shardId-2", 9),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("complete_intent: {e}"));
    let kept = store
        .last(client, "s", "shardId-1")
        .await
        .unwrap_or_else(|e| panic!("last: {e}"));
    assert_eq!(
        kept,
        Some(good.sequence.clone()),
        "a completion moved a checkpoint back"
    );
    let added = store
        .last(client, "s", "shardId-2")
        .await
        .unwrap_or_else(|e| panic!("last: {e}"));
    assert_eq!(added, Some(sequence(9)));
    let left = store
        .intents(client, "s")
        .await
        .unwrap_or_else(|e| panic!("intents: {e}"));
    assert!(left.is_empty(), "intents left: {left:?}");
    let other = store
        .intents(client, "other")
        .await
        .unwrap_or_else(|e| panic!("intents: {e}"));
    if other.len() != 1 {
        panic!("the other stream's intents: {other:?}");
    }
    // Each checkpoint a completion moved names the archive holding it; the
    // one it did not move (shardId-1, kept at 5) keeps its archive.
    let archives = store
        .checkpoint_archives(client, "s")
        .await
        .unwrap_or_else(|e| panic!("checkpoint_archives: {e}"));
    let want = [
        ("shardId-1".to_owned(), keys[1].to_owned()),
        ("shardId-2".to_owned(), moved.to_owned()),
    ];
    assert_eq!(archives, want, "the archives of the checkpoints");
    let none = store
        .checkpoint_archives(client, "other")
        .await
        .unwrap_or_else(|e| panic!("checkpoint_archives: {e}"));
    assert!(none.is_empty(), "another stream's: {none:?}");
}

/// Replays: none until saved; saved per consumer and stream, with a long
/// archive list kept exactly; moved with their checkpoints in one
/// transaction, or not at all.
pub async fn replays(store: &dyn ReplayStore, consumer: &str) {
    let none = store
        .replay(consumer, "s")
        .await
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(none, None, "a replay before any was saved");
    if store
        .move_replay(consumer, "s", &ReplayPosition::Live, &[])
        .await
        .is_ok()
    {
        panic!("moving a replay that was never saved succeeded");
    }
    // A year of hourly archives of a few workers: no column limit.
    let archives: Vec<(String, u64)> = (0..20_000u64)
        .map(|i| {
            (
                format!("2026/11/{:02}/s-c-{}.tri", i % 28 + 1, 1_764_400_000 + i),
                i * 1000,
            )
        })
        .collect();
    let state = ReplayState {
        from: 1_764_400_000,
        archives,
        end: None,
        position: ReplayPosition::Start,
    };
    store
        .save_replay(consumer, "s", &state)
        .await
        .unwrap_or_else(|e| panic!("save_replay: {e}"));
    let other = ReplayState {
        from: 7,
        archives: vec![],
        end: Some(ReplayEnd {
            to_ms: 1_764_400_000_123,
        }),
        position: ReplayPosition::Live,
    };
    store
        .save_replay(consumer, "other", &other)
        .await
        .unwrap_or_else(|e| panic!("save_replay: {e}"));
    let loaded = store
        .replay(consumer, "s")
        .await
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert!(loaded.as_ref() == Some(&state), "the saved replay differs");

    let at = ReplayPosition::Archive {
        key: state.archives[3].0.clone(),
        index: u64::from(u32::MAX) + 5,
    };
    store
        .move_replay(consumer, "s", &at, &[])
        .await
        .unwrap_or_else(|e| panic!("move_replay: {e}"));
    // A move whose checkpoints cannot be saved changes nothing.
    let bad = Checkpoint {
        shard: String::new(),
        ..checkpoint(consumer, "s", "shardId-0", 5)
    };
    let good = checkpoint(consumer, "s", "shardId-1", 5);
    if store
        .move_replay(consumer, "s", &ReplayPosition::Live, &[good.clone(), bad])
        .await
        .is_ok()
    {
        panic!("a move with an unsavable checkpoint succeeded");
    }
    let after = store
        .replay(consumer, "s")
        .await
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(after.map(|s| s.position), Some(at), "a failed move moved");
    let kept = store
        .last(consumer, "s", "shardId-1")
        .await
        .unwrap_or_else(|e| panic!("last: {e}"));
    assert_eq!(kept, None, "a failed move saved a checkpoint");

    store
        .move_replay(
            consumer,
            "s",
            &ReplayPosition::Live,
            std::slice::from_ref(&good),
        )
        .await
        .unwrap_or_else(|e| panic!("move_replay live: {e}"));
    let live = store
        .replay(consumer, "s")
        .await
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(live.map(|s| s.position), Some(ReplayPosition::Live));
    let saved = store
        .last(consumer, "s", "shardId-1")
        .await
        .unwrap_or_else(|e| panic!("last: {e}"));
    assert_eq!(saved, Some(good.sequence), "the hand-off checkpoints");
    let other_loaded = store
        .replay(consumer, "other")
        .await
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(other_loaded, Some(other), "another stream's replay");
}
