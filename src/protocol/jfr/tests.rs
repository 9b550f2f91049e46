//! The reader on real recordings (`tests/fixtures/jfr/*.jfr`, made by `record_jfr.sh`) and on
//! the damage a file can come with: cut anywhere, sizes and offsets that lie, bytes flipped.
//! What each recording holds is checked against the JDK's own reader in `input::jfr`.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfr").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Events per kind of the first chunk.
fn kinds(bytes: &[u8]) -> Result<std::collections::BTreeMap<String, u64>> {
    let chunk = Chunk::parse(bytes)?;
    let mut counts = std::collections::BTreeMap::new();
    let mut frames = Vec::new();
    chunk.events(|e| {
        *counts.entry(format!("{:?}", e.kind)).or_default() += 1;
        // Every stack and method an event names is in the chunk.
        if e.stack != 0 {
            assert!(chunk.stack(e.stack, &mut frames).expect("readable").is_some(), "stack {}", e.stack);
            for f in &frames {
                assert!(chunk.method(f.method).expect("readable").is_some(), "method {}", f.method);
            }
        }
    })?;
    Ok(counts)
}

#[test]
fn event_counts_are_those_jfr_summary_gives() {
    // `jfr summary` of the same files (record_jfr.sh prints them).
    let jdk = kinds(&fixture("jdk-profile.jfr")).expect("jdk");
    let expected = |name: &str, event: &str| -> u64 {
        let out = std::process::Command::new("jfr")
            .args(["summary"])
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jfr").join(name))
            .output();
        let out = out.expect("the JDK's jfr tool (Java 17, installed by .ci/run)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(event)).then(|| w.next().and_then(|n| n.parse().ok())).flatten()
            })
            .unwrap_or(0)
    };
    assert_eq!(jdk["Execution"], expected("jdk-profile.jfr", "jdk.ExecutionSample"));
    assert_eq!(jdk["NativeMethod"], expected("jdk-profile.jfr", "jdk.NativeMethodSample"));
    assert_eq!(jdk["AllocationSample"], expected("jdk-profile.jfr", "jdk.ObjectAllocationSample"));
    let lock = kinds(&fixture("ap-lock.jfr")).expect("lock");
    assert_eq!(lock["MonitorEnter"], expected("ap-lock.jfr", "jdk.JavaMonitorEnter"));
    assert_eq!(lock["ThreadPark"], expected("ap-lock.jfr", "jdk.ThreadPark"));
    let alloc = kinds(&fixture("ap-alloc.jfr")).expect("alloc");
    assert_eq!(alloc["AllocationInNewTlab"], expected("ap-alloc.jfr", "jdk.ObjectAllocationInNewTLAB"));
}

#[test]
fn headers_of_both_versions() {
    let jdk = header(&fixture("jdk-profile.jfr")).expect("jdk");
    assert_eq!((jdk.major, jdk.minor, jdk.compressed), (2, 1, true));
    let ap = header(&fixture("ap-itimer.jfr")).expect("async-profiler");
    assert_eq!((ap.major, ap.minor, ap.compressed), (2, 0, true));
    assert_eq!(ap.size, fixture("ap-itimer.jfr").len() as u64, "one chunk, the whole file");
}

#[test]
fn not_jfr_at_all() {
    assert_eq!(header(b""), Err(Error::NotJfr("nothing".into())));
    assert_eq!(header(b"PK\x03\x04rest"), Err(Error::NotJfr("50 4b 03 04".into())));
    assert_eq!(Chunk::parse(b"{\"json\": 1}").map(|_| ()), Err(Error::NotJfr("7b 22 6a 73".into())));
    let mut v = fixture("ap-itimer.jfr");
    v[4..6].copy_from_slice(&9u16.to_be_bytes());
    assert_eq!(header(&v), Err(Error::Version(9, 0)));
}

#[test]
fn a_cut_chunk_is_incomplete_wherever_it_is_cut() {
    let v = fixture("ap-lock.jfr");
    for cut in [4, 20, 67, 68, 100, v.len() / 2, v.len() - 1] {
        match Chunk::parse(&v[..cut]) {
            Err(Error::Incomplete { need, have }) => {
                assert_eq!(have, cut as u64, "{cut}");
                assert!(need > have, "{cut}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_chunk_still_being_written_is_incomplete() {
    let mut v = fixture("ap-lock.jfr");
    v[8..16].copy_from_slice(&0i64.to_be_bytes());
    assert!(matches!(header(&v), Err(Error::Incomplete { .. })));
}

#[test]
fn a_claimed_size_of_2_gb_is_refused_without_reading_it() {
    let mut v = fixture("ap-lock.jfr");
    v[8..16].copy_from_slice(&(2i64 << 30).to_be_bytes());
    assert_eq!(Chunk::parse(&v).map(|_| ()), Err(Error::Incomplete { need: 2 << 30, have: v.len() as u64 }));
}

#[test]
fn offsets_outside_the_chunk_are_damage() {
    for (at, value) in [(16, 5i64), (16, 1 << 40), (24, -1), (24, 0)] {
        let mut v = fixture("ap-lock.jfr");
        v[at..at + 8].copy_from_slice(&value.to_be_bytes());
        assert!(matches!(Chunk::parse(&v), Err(Error::Corrupt(_))), "offset at {at} = {value}");
    }
    let mut v = fixture("ap-lock.jfr");
    v[56..64].copy_from_slice(&0i64.to_be_bytes());
    assert_eq!(Chunk::parse(&v).map(|_| ()), Err(Error::Corrupt("0 ticks per second".into())));
}

/// Every single byte flipped, in turn, over the parts that describe the rest (the metadata
/// and the constant pools) and a stretch of events: an error or a chunk, never a panic or a
/// hang.
#[test]
fn flipped_bytes_never_panic() {
    let v = fixture("ap-lock.jfr");
    let h = header(&v).expect("header");
    let mut spans = vec![HEADER_SIZE..HEADER_SIZE + 400, h.meta_offset as usize..v.len().min(h.meta_offset as usize + 1500)];
    spans.push(h.cpool_offset as usize..(h.cpool_offset as usize + 600).min(v.len()));
    let mut frames = Vec::new();
    for span in spans {
        for at in span {
            for flip in [0xffu8, 0x80, 0x01] {
                let mut bad = v.clone();
                bad[at] ^= flip;
                if let Ok(chunk) = Chunk::parse(&bad) {
                    let _ = chunk.events(|e| {
                        let _ = chunk.stack(e.stack, &mut frames);
                        for f in &frames {
                            let _ = chunk.method(f.method);
                            let _ = chunk.frame_type(f.kind);
                        }
                        let _ = chunk.class_name(e.class);
                    });
                }
            }
        }
    }
}

#[test]
fn hidden_class_names_as_java_prints_them() {
    assert_eq!(binary_name("java/lang/String"), "java.lang.String");
    assert_eq!(binary_name("Contended$$Lambda$4/0x00007fc1f0001800"), "Contended$$Lambda$4/0x00007fc1f0001800");
    assert_eq!(binary_name("com/x/Main$$Lambda+0x0000000801001234/123456"), "com.x.Main$$Lambda/0x0000000801001234");
    assert_eq!(binary_name("a/b/0xZZ"), "a.b.0xZZ");
}
