//! stackd's S3 client against a real S3 API (moto's server): signed requests accepted, the
//! conditional write that makes uploads idempotent, listings across pages, and clear errors for
//! a missing bucket and an unreachable endpoint.

mod common;

use axum::body::Bytes;
use stackd::cluster::objects::{Objects, Put};

fn store(moto: &common::moto::Moto, url: &str) -> Objects {
    let env = moto.env();
    Objects::parse(url, |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).expect("an S3 store")
}

#[tokio::test]
async fn put_get_list_delete_on_s3() {
    let moto = tokio::task::spawn_blocking(|| common::moto::Moto::start("stackd-test")).await.expect("moto");
    let s3 = store(&moto, "s3://stackd-test/cluster/");
    assert_eq!(s3.put_if_absent("segments/n1/000001", Bytes::from_static(b"first")).await.expect("put"), Put::Created);
    // The same name again: refused by the store (412), the object left as it was.
    assert_eq!(s3.put_if_absent("segments/n1/000001", Bytes::from_static(b"second")).await.expect("put"), Put::Exists);
    assert_eq!(s3.get("segments/n1/000001").await.expect("get").as_deref(), Some(&b"first"[..]));
    s3.put("segments/n2/000001", Bytes::from(vec![7u8; 100_000])).await.expect("put");
    s3.put("index/n1", Bytes::from_static(b"i")).await.expect("put");
    let listed = s3.list("segments/").await.expect("list");
    let sizes: Vec<(&str, u64)> = listed.iter().map(|l| (l.key.as_str(), l.size)).collect();
    assert_eq!(sizes, [("segments/n1/000001", 5), ("segments/n2/000001", 100_000)]);
    // LastModified, as S3 stamps it (whole seconds or finer): now.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    assert!(listed.iter().all(|l| (now - 60_000..=now + 1_000).contains(&l.modified_ms)), "{listed:?}");
    // Only what sorts after a key (start-after), and the names one level down (delimiter).
    let after: Vec<String> =
        s3.list_after("segments/", Some("segments/n1/000001")).await.expect("list").into_iter().map(|l| l.key).collect();
    assert_eq!(after, ["segments/n2/000001"]);
    assert_eq!(s3.children("segments/").await.expect("list"), ["n1", "n2"]);
    assert_eq!(s3.children("").await.expect("list"), ["index", "segments"]);
    // What another client sees: the keys under the prefix, the bytes as written.
    let seen = moto.python("print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='stackd-test')['Contents']))");
    assert_eq!(seen.trim(), "['cluster/index/n1', 'cluster/segments/n1/000001', 'cluster/segments/n2/000001']");
    assert_eq!(
        moto.python("print(s3.get_object(Bucket='stackd-test', Key='cluster/segments/n1/000001')['Body'].read())").trim(),
        "b'first'"
    );
    s3.delete("segments/n1/000001").await.expect("delete");
    s3.delete("segments/n1/000001").await.expect("deleting what is gone is no error");
    assert_eq!(s3.get("segments/n1/000001").await.expect("get"), None);

    // More than one page of a listing (S3 answers 1,000 keys a page).
    moto.python("for i in range(1005):\n    s3.put_object(Bucket='stackd-test', Key=f'cluster/many/{i:05}', Body=b'x')");
    let many = s3.list("many/").await.expect("list");
    assert_eq!(many.len(), 1005);
    assert_eq!((many[0].key.as_str(), many[1004].key.as_str()), ("many/00000", "many/01004"));

    // A bucket that does not exist, and nothing listening: errors that say so.
    let missing = store(&moto, "s3://no-such-bucket").get("x").await.expect_err("no bucket");
    assert_eq!(missing.reason(), "no_bucket", "{missing}");
    assert!(missing.to_string().contains("NoSuchBucket"), "{missing}");
    let port = common::flink::free_port();
    let env = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", "k".into()),
        ("AWS_SECRET_ACCESS_KEY", "s".into()),
    ];
    let down = Objects::parse("s3://stackd-test", |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).expect("store");
    let err = down.put("x", Bytes::new()).await.expect_err("nothing listens");
    assert_eq!(err.reason(), "connect");
    assert!(err.to_string().starts_with(&format!("cannot reach the object store at http://127.0.0.1:{port}: ")), "{err}");
}
