//! What every [`ArchiveStore`] must do, as its documentation promises: a
//! suite that backend crates and this crate's tests run against a fresh,
//! empty store (the local S3 server, a temporary directory). Each function
//! panics with a message naming the broken rule.

use crate::store::{ArchiveStore, ObjectInfo, PutOptions};
use crate::ErrorKind;

/// Every rule below, in turn, on an empty `store`.
pub async fn run(store: &dyn ArchiveStore) {
    missing_objects(store).await;
    put_get_head_delete(store).await;
    ranged_get(store).await;
    create_only(store).await;
    put_file_round_trip(store).await;
    lists_day_prefixes_in_key_order(store).await;
    check_writable_leaves_nothing(store).await;
}

/// The whole body of `key` from `offset` on.
pub async fn read_all(store: &dyn ArchiveStore, key: &str, offset: u64) -> Vec<u8> {
    let mut body = store
        .get(key, offset)
        .await
        .unwrap_or_else(|e| panic!("get {key} from {offset}: {e}"));
    let mut all = Vec::new();
    while body
        .reader
        .read_into(&mut all)
        .await
        .unwrap_or_else(|e| panic!("reading {key}: {e}"))
        > 0
    {}
    if let Some(len) = body.len {
        assert_eq!(
            len,
            all.len() as u64,
            "get {key} from {offset}: the length said"
        );
    }
    all
}

/// A missing object: `head` is `None`, `get` is `NotFound`, `delete`
/// succeeds, and a listing of its prefix is empty. (The store holds
/// another object: listing a local store whose directory does not exist
/// yet is `NotFound`, as is listing a missing bucket.)
pub async fn missing_objects(store: &dyn ArchiveStore) {
    let key = "20150709/missing.tri";
    let other = "20150708/present.tri";
    store
        .put_bytes(other, b"here".to_vec(), &PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("put_bytes: {e}"));
    assert_eq!(
        store.head(key).await.unwrap(),
        None,
        "head of a missing object"
    );
    match store.get(key, 0).await {
        Err(e) => assert_eq!(e.kind, ErrorKind::NotFound, "get of a missing object: {e}"),
        Ok(_) => panic!("get of a missing object succeeded"),
    }
    store
        .delete(key)
        .await
        .unwrap_or_else(|e| panic!("deleting a missing object must succeed: {e}"));
    assert_eq!(store.list("20150709/").await.unwrap(), Vec::new());
    store.delete(other).await.unwrap();
}

/// `put_bytes` stores the bytes whole; `head` gives their size; `get`
/// reads them back with a version tag; `delete` removes them.
pub async fn put_get_head_delete(store: &dyn ArchiveStore) {
    let key = "20150710/round-trip.tri";
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let receipt = store
        .put_bytes(key, data.clone(), &PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("put_bytes: {e}"));
    assert_eq!(receipt.size, data.len() as u64, "the receipt's size");
    assert_eq!(
        store.head(key).await.unwrap(),
        Some(ObjectInfo {
            key: key.into(),
            size: data.len() as u64
        }),
        "head after put"
    );
    assert_eq!(read_all(store, key, 0).await, data, "get after put");
    let (a, b) = (
        store.get(key, 0).await.unwrap(),
        store.get(key, 0).await.unwrap(),
    );
    assert!(!a.etag.is_empty(), "a body has a version tag");
    assert_eq!(a.etag, b.etag, "the same object has the same version tag");
    // Replacing (not create-only) gives the new bytes and a new tag.
    store
        .put_bytes(key, b"replaced".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        read_all(store, key, 0).await,
        b"replaced",
        "get after a replace"
    );
    assert_ne!(
        store.get(key, 0).await.unwrap().etag,
        a.etag,
        "a replaced object has a new version tag"
    );
    store.delete(key).await.unwrap();
    assert_eq!(store.head(key).await.unwrap(), None, "head after delete");
    assert_eq!(
        store.list("20150710/").await.unwrap(),
        Vec::new(),
        "list after delete"
    );
}

/// `get` from an offset gives the bytes from there to the end.
pub async fn ranged_get(store: &dyn ArchiveStore) {
    let key = "20150711/ranged.tri";
    let data: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 256) as u8).collect();
    store
        .put_bytes(key, data.clone(), &PutOptions::default())
        .await
        .unwrap();
    for offset in [1u64, 1_000, 4_999] {
        assert_eq!(
            read_all(store, key, offset).await,
            &data[offset as usize..],
            "get from {offset}"
        );
    }
    store.delete(key).await.unwrap();
}

/// A create-only write of an existing key fails with `AlreadyExists` and
/// leaves the object as it was; of a new key it succeeds.
pub async fn create_only(store: &dyn ArchiveStore) {
    let key = "20150712/create-only.tri";
    let options = PutOptions {
        create_only: true,
        ..PutOptions::default()
    };
    store
        .put_bytes(key, b"first".to_vec(), &options)
        .await
        .unwrap_or_else(|e| panic!("a create-only write of a new key: {e}"));
    match store.put_bytes(key, b"second".to_vec(), &options).await {
        Err(e) => assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}"),
        Ok(_) => panic!("a create-only write replaced an existing object"),
    }
    assert_eq!(
        read_all(store, key, 0).await,
        b"first",
        "the object is kept"
    );
    store.delete(key).await.unwrap();
}

/// `put_file` stores the file's bytes, create-only too.
pub async fn put_file_round_trip(store: &dyn ArchiveStore) {
    let key = "20150713/file.tri";
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let path = std::env::temp_dir().join(format!(
        "triton-conformance-{}-{}",
        std::process::id(),
        crate::store::probe_name()
    ));
    std::fs::write(&path, &data).unwrap();
    let options = PutOptions {
        create_only: true,
        ..PutOptions::default()
    };
    let receipt = store.put_file(key, &path, &options).await;
    let again = store.put_file(key, &path, &options).await;
    let _ = std::fs::remove_file(&path);
    let receipt = receipt.unwrap_or_else(|e| panic!("put_file: {e}"));
    assert_eq!(receipt.size, data.len() as u64, "the receipt's size");
    match again {
        Err(e) => assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}"),
        Ok(_) => panic!("a create-only put_file replaced an existing object"),
    }
    assert_eq!(read_all(store, key, 0).await, data, "get after put_file");
    store.delete(key).await.unwrap();
}

/// A listing gives every object below the prefix, with sizes, in key
/// order: one day's prefix holds that day's archives only.
pub async fn lists_day_prefixes_in_key_order(store: &dyn ArchiveStore) {
    let keys = [
        "20150714/s-store-1436832000.tri",
        "20150714/s-store-1436832001.tri",
        "20150714/s-store-1436832001.metadata",
        "20150715/s-store-1436918400.tri",
    ];
    // Written out of order: the listing sorts.
    for (i, key) in keys.iter().enumerate().rev() {
        store
            .put_bytes(key, vec![b'x'; i + 1], &PutOptions::default())
            .await
            .unwrap();
    }
    let info = |i: usize| ObjectInfo {
        key: keys[i].into(),
        size: i as u64 + 1,
    };
    assert_eq!(
        store.list("20150714/").await.unwrap(),
        vec![info(0), info(2), info(1)],
        "one day, in key order"
    );
    assert_eq!(
        store.list("20150715/").await.unwrap(),
        vec![info(3)],
        "the next day"
    );
    assert_eq!(
        store.list("2015071").await.unwrap(),
        vec![info(0), info(2), info(1), info(3)],
        "a prefix that is not a folder"
    );
    for key in keys {
        store.delete(key).await.unwrap();
    }
}

/// `check_writable` succeeds on a writable store and leaves nothing that a
/// listing sees.
pub async fn check_writable_leaves_nothing(store: &dyn ArchiveStore) {
    store
        .check_writable()
        .await
        .unwrap_or_else(|e| panic!("check_writable: {e}"));
    assert_eq!(
        store.list("").await.unwrap(),
        Vec::new(),
        "the probe is gone"
    );
}
