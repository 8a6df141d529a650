//! The short form of `make apps`: Redis, nginx, HAProxy, PostgreSQL,
//! memcached and Icecast (scripts/apps.py --quick), each started on 127.0.0.1 as its
//! own service user (given /dev/userfaultfd by `zio-run --setup` for the
//! run), once without and once with zio. The script fails if a byte read
//! back differs, if a server under zio could not open userfaultfd, or if
//! zio elided fewer copies per request than the workload makes (Redis);
//! this test checks that every program ran and what the table says.
//! (The speeds are figures for a reader: one pair proves nothing.)

use zio_integration::{quick_script, require_root, TempDir};

#[test]
fn real_servers_run_as_their_users_with_their_data_intact() {
    require_root("the real-servers test (servers run as their own users)");
    let dir = TempDir::new("apps");
    let (_, table) = quick_script("apps.py", &dir);
    let head: Vec<&str> = table.lines().next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for program in [
        "redis",
        "nginx",
        "haproxy",
        "postgres",
        "memcached",
        "icecast",
    ] {
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == program).collect();
        assert!(!mine.is_empty(), "{program} did not run:\n{table}");
        for r in mine {
            assert_eq!(r[col("verified")], "True", "{program}: {table}");
            assert_eq!(r[col("pass_through")], "0", "{program}: {table}");
        }
    }
    let redis_get: Vec<&Vec<&str>> = rows
        .iter()
        .filter(|r| r[0] == "redis" && r[1].starts_with("get "))
        .collect();
    assert_eq!(redis_get.len(), 1, "{table}");
    let elided: f64 = redis_get[0][col("elided")].parse().unwrap();
    assert!(
        elided >= 0.9,
        "redis GET: {elided} elided copies per request\n{table}"
    );
}
