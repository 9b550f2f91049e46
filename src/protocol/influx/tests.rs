//! Line-protocol parser tests: InfluxDB's own cases, with its exact error kinds.

use super::*;

/// (measurement, tags, fields, timestamp) for every line.
type Point = (String, Vec<(String, String)>, Vec<(String, FieldValue<'static>)>, Option<i64>);

fn points(body: &str) -> Vec<Result<Point, ErrorKind>> {
    parse_body(body.as_bytes())
        .map(|r| {
            r.map(|l| {
                (
                    l.measurement().into_owned(),
                    l.tags().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
                    l.fields()
                        .map(|(k, v)| {
                            let v = match v {
                                FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.into_owned())),
                                FieldValue::F64(x) => FieldValue::F64(x),
                                FieldValue::I64(x) => FieldValue::I64(x),
                                FieldValue::U64(x) => FieldValue::U64(x),
                                FieldValue::Bool(x) => FieldValue::Bool(x),
                            };
                            (k.into_owned(), v)
                        })
                        .collect(),
                    l.timestamp,
                )
            })
            .map_err(|e| e.kind)
        })
        .collect()
}

fn one(body: &str) -> Result<Point, ErrorKind> {
    let mut all = points(body);
    assert_eq!(all.len(), 1, "{body:?} gave {all:?}");
    all.remove(0)
}

fn field(body: &str) -> Result<FieldValue<'static>, ErrorKind> {
    one(body).map(|p| p.2[0].1.clone())
}

fn s(v: &str) -> FieldValue<'static> {
    FieldValue::Str(Cow::Owned(v.to_string()))
}

#[test]
fn numbers_and_booleans() {
    use FieldValue::*;
    let cases: &[(&str, Result<FieldValue<'static>, ErrorKind>)] = &[
        ("cpu value=1", Ok(F64(1.0))),
        ("cpu value=1i", Ok(I64(1))),
        ("cpu value=1u", Ok(U64(1))),
        ("cpu value=-1.5E+3", Ok(F64(-1500.0))),
        ("cpu value=.1", Ok(F64(0.1))),
        ("cpu value=1.", Ok(F64(1.0))),
        ("cpu value=1.0E4", Ok(F64(10000.0))),
        ("cpu value=-1.0e-4", Ok(F64(-0.0001))),
        ("cpu value=1.1.1", Err(ErrorKind::InvalidNumber)),
        ("cpu value=NaN", Err(ErrorKind::InvalidBoolean)),
        ("cpu value=Inf", Err(ErrorKind::InvalidBoolean)),
        ("cpu value=1.0i", Err(ErrorKind::InvalidNumber)),
        ("cpu value=9223372036854775808i", Err(ErrorKind::InvalidNumber)),
        ("cpu value=-9223372036854775808i", Ok(I64(i64::MIN))),
        ("cpu value=tRUE", Err(ErrorKind::InvalidBoolean)),
        ("cpu value=+1", Err(ErrorKind::InvalidBoolean)),
        ("cpu value=-", Err(ErrorKind::InvalidNumber)),
        ("cpu value=0x10", Err(ErrorKind::InvalidNumber)),
        ("cpu value=1e", Err(ErrorKind::InvalidNumber)),
        ("cpu value=1ii", Err(ErrorKind::InvalidNumber)),
        ("cpu value=9i10", Err(ErrorKind::InvalidNumber)),
        ("cpu value=invalid", Err(ErrorKind::InvalidBoolean)),
        ("cpu value=false", Ok(Bool(false))),
    ];
    for (input, want) in cases {
        assert_eq!(&field(input), want, "{input}");
    }
    let all = one("cpu a=t,b=T,c=true,d=True,e=TRUE,f=f,g=False").expect("valid");
    let bools: Vec<_> = all.2.into_iter().map(|(_, v)| v).collect();
    assert_eq!(bools, [true, true, true, true, true, false, false].map(Bool));
}

#[test]
fn strings() {
    assert_eq!(field(r#"cpu value="test\\\"" 1000000000"#), Ok(s("test\\\"")));
    assert_eq!(field(r#"cpu value="test\\" 1000000000"#), Ok(s("test\\")));
    assert_eq!(field(r#"cpu value="{Hello\"{\,}\" World}" 1000000000"#), Ok(s(r#"{Hello"{\,}" World}"#)));
    assert_eq!(one("cpu str=\"foo\nbar\" 1000000000").map(|p| (p.2[0].1.clone(), p.3)), Ok((s("foo\nbar"), Some(1000000000))));
    assert_eq!(field(r#"m v="\n""#), Ok(s("\\n")));
    assert_eq!(field(r#"m v="open"#), Err(ErrorKind::UnbalancedQuotes));
}

#[test]
fn escapes_per_section() {
    let m = |body: &str| one(body).map(|p| p.0);
    assert_eq!(m(r"foo\,bar value=1i"), Ok("foo,bar".into()));
    assert_eq!(m(r"cpu\ load,region=east value=1.0"), Ok("cpu load".into()));
    assert_eq!(m("cpu=load,region=east value=1.0"), Ok("cpu=load".into()));
    assert_eq!(m(r"cpu\=load,region=east value=1.0"), Ok(r"cpu\=load".into()));
    assert_eq!(m(r#""cpu",host=serverA value=1.0"#), Ok(r#""cpu""#.into()));
    let t = |body: &str| one(body).map(|p| p.1);
    assert_eq!(t(r"cpu,regions=east\,west value=1.0"), Ok(vec![("regions".into(), "east,west".into())]));
    assert_eq!(t(r"cpu,regions=\\ east value=1.0"), Ok(vec![("regions".into(), r"\ east".into())]));
    assert_eq!(t(r"cpu,regions=eas\t value=1.0"), Ok(vec![("regions".into(), r"eas\t".into())]));
    assert_eq!(t(r"cpu,equals\=foo=tag\=value value=1i"), Ok(vec![("equals=foo".into(), "tag=value".into())]));
    let f = |body: &str| one(body).map(|p| p.2.into_iter().map(|(k, _)| k).collect::<Vec<_>>());
    assert_eq!(f(r"cpu,regions=east value\,ms=1.0,a\ b=2"), Ok(vec!["value,ms".to_string(), "a b".to_string()]));
    assert_eq!(f(r"cpu \a=1i"), Ok(vec![r"\a".to_string()]));
}

#[test]
fn duplicate_and_reserved_keys_in_any_order() {
    let cases: &[(&str, ErrorKind)] = &[
        ("cpu,b=1,a=1,b=2 value=1", ErrorKind::DuplicateTags),
        ("cpu,b=1,a=1,b=2,time=x value=1", ErrorKind::DuplicateTags),
        ("cpu,b=1,time=x,a=1,b=2 value=1", ErrorKind::TimeTag),
        ("cpu,a=1,b=1,b=2,time=x value=1", ErrorKind::DuplicateTags),
    ];
    for (input, want) in cases {
        assert_eq!(one(input).map(|_| ()), Err(*want), "{input}");
    }
    // Many tags, unsorted, all distinct: accepted (in linear time).
    let tags: String = (0..20_000).rev().map(|n| format!(",k{n}=v")).collect();
    assert_eq!(one(&format!("cpu{tags} value=1")).map(|p| p.1.len()), Ok(20_000));
}

#[test]
fn structural_errors() {
    let cases: &[(&str, ErrorKind)] = &[
        ("cpu,host=serverA,host=serverB value=1i", ErrorKind::DuplicateTags),
        ("cpu,host=f=o value=1", ErrorKind::InvalidTagFormat),
        ("cpu,host= value=1", ErrorKind::MissingTagValue),
        ("cpu,host value=1", ErrorKind::MissingTagValue),
        ("cpu, value=1", ErrorKind::MissingTagKey),
        ("cpu,=x value=1", ErrorKind::MissingTagKey),
        ("cpu value=", ErrorKind::MissingFieldValue),
        ("cpu value=,v=1i", ErrorKind::MissingFieldValue),
        ("cpu =1i", ErrorKind::MissingFieldKey),
        ("cpu", ErrorKind::MissingFields),
        ("cpu,a=b", ErrorKind::MissingFields),
        ("cpu value", ErrorKind::InvalidFieldFormat),
        ("cpu value=1 12 34", ErrorKind::BadTimestamp),
        ("cpu value=1 1-", ErrorKind::BadTimestamp),
        (r"a v=1 0\", ErrorKind::BadTimestamp),
        ("cpu,time=x value=1", ErrorKind::TimeTag),
        ("cpu time=1", ErrorKind::TimeField),
        (",cpu value=1", ErrorKind::MissingMeasurement),
    ];
    for (input, want) in cases {
        assert_eq!(one(input).map(|_| ()), Err(*want), "{input}");
    }
}

#[test]
fn whitespace_comments_timestamps() {
    assert_eq!(one("cpu    value=1.0     1257894000000000000   ").map(|p| p.3), Ok(Some(1257894000000000000)));
    assert_eq!(one("cpu value=1 -1").map(|p| p.3), Ok(Some(-1)));
    assert_eq!(one("cpu value=1").map(|p| p.3), Ok(None));
    assert_eq!(points("# comment\n   # indented\n\ncpu value=1i 1").len(), 1);
    assert_eq!(one("\tcpu value=1").map(|p| p.0), Ok("cpu".into()));
    assert_eq!(one("cpu value=1\r\n").map(|p| p.2[0].1.clone()), Ok(FieldValue::F64(1.0)));
    let t = one("cpu,b=2,a=1 value=1").expect("valid").1;
    assert_eq!(t, vec![("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())]);
}

#[test]
fn one_bad_line_keeps_the_others() {
    let got = points("cpu value=42\ncpu value=invalid\ncpu value=42");
    assert_eq!(got.len(), 3);
    assert!(got[0].is_ok() && got[2].is_ok());
    assert_eq!(got[1].as_ref().map(|_| ()), Err(&ErrorKind::InvalidBoolean));
    let err = parse_body(b"cpu value=invalid").next().expect("one line").expect_err("bad");
    assert_eq!(err.to_string(), "unable to parse 'cpu value=invalid': invalid boolean");
}

#[test]
fn profiler_lines() {
    let p = one("cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12,hostname=worker-1,jvmName=4242@worker-1,pid=4242,spark=sparkapp value=3.0 1500000000123000000").expect("valid");
    assert_eq!(p.0, "cpu.trace.java-lang-Thread-sleep--2.com-example-Main-main-12");
    assert_eq!(p.1.len(), 4);
    assert_eq!(p.2, vec![("value".to_string(), FieldValue::F64(3.0))]);
    assert_eq!(p.3, Some(1500000000123000000));
    let p = one(r"cpu.trace.com-example-FooTest-my\ test-10.java-lang-Thread-run-748,hostname=h,jvmName=1@h,pid=1,prefix=p value=1.0 1500000000000000000").expect("valid");
    assert_eq!(p.0, "cpu.trace.com-example-FooTest-my test-10.java-lang-Thread-run-748");
}

#[test]
fn error_message_truncates_long_lines() {
    let long = format!("cpu value={}", "x".repeat(1000));
    let err = parse_body(long.as_bytes()).next().expect("one").expect_err("bad");
    let msg = err.to_string();
    assert!(msg.len() < 300, "{}", msg.len());
    assert!(msg.ends_with("…': invalid boolean"), "{msg}");
}
