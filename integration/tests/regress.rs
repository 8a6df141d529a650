//! The short form of `make regress`: every ordinary program of the suite
//! (scripts/regress.py: Python reading files and pipes, a socket relay,
//! http.server, multiprocessing with every start method, subprocess
//! pipes, dd, cat, sort, tar, gzip, zstd) runs once without and once with
//! zio, and its output must be the same bytes. One elided copy read in
//! five orders must be elided and stay within the bound on its faults.
//! (The speeds it prints are figures for a reader, not assertions: one
//! pair on a shared machine proves nothing about speed.)

use zio_integration::{quick_script, TempDir};

#[test]
fn ordinary_programs_give_the_same_bytes_under_zio() {
    let dir = TempDir::new("regress");
    let (text, table) = quick_script("regress.py", &dir);
    for case in ["python read backwards", "multiprocessing spawn", "gzip"] {
        assert!(text.contains(case), "{case} did not run:\n{text}");
    }
    // kind,case,speed,min,max,pairs,without,with,unit,elided_copies,
    // faults_missing,bytes_backed_up,bound_or_added
    let orders: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[0] == "order")
        .collect();
    assert_eq!(orders.len(), 5, "{table}");
    for f in &orders {
        let (elided, faults, bound): (u64, u64, u64) = (
            f[9].parse().unwrap(),
            f[10].parse().unwrap(),
            f[12].parse().unwrap(),
        );
        assert_eq!(elided, 1, "{}: the copy was not elided\n{table}", f[1]);
        assert!(faults >= 1, "{}: the copy was never read\n{table}", f[1]);
        assert!(faults <= bound, "{}: {faults} faults, bound {bound}", f[1]);
    }
    let costs = table.lines().filter(|l| l.starts_with("cost,")).count();
    assert_eq!(costs, 3, "start, fork, fork with records:\n{table}");
}
