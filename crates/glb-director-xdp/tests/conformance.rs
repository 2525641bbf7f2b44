//! Every case of `conformance/pcap/`: each input frame is run through the
//! loaded XDP program with BPF_PROG_TEST_RUN and must give exactly the
//! frame of `expected.pcap` (apart from the Ethernet source, which a test
//! run has no port to take from: the program then uses the address the
//! frame was sent to) with the verdict `expected.verdicts.txt` gives it.

mod support;

#[test]
fn conformance_pcaps_through_the_program() {
    let cases = support::conformance_cases();
    assert!(!cases.is_empty(), "no conformance cases");
    for case in &cases {
        match support::check_case(case) {
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => panic!("{e}"),
        }
    }
}
