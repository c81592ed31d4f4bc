//! AEZ against the reference implementation's vectors. The data file
//! (`tests/vectors/aez_v5.json`) names where they come from: a subset of the
//! extract, hash, prf and encrypt vectors that Yawning/aez's `aez_test.go`
//! carries (@0e8ce6aa5554d21623d9a60d7675f8285b58a80d), copied as data.

use super::*;

#[derive(serde::Deserialize)]
struct Vectors {
    extract: Vec<ExtractVec>,
    hash: Vec<HashVec>,
    prf: Vec<PrfVec>,
    encrypt: Vec<EncryptVec>,
}

#[derive(serde::Deserialize)]
struct ExtractVec {
    #[serde(rename = "in")]
    input: String,
    out: String,
}

#[derive(serde::Deserialize)]
struct HashVec {
    key: String,
    tau_bits: u32,
    /// The nonce, then each string of associated data.
    tweak: Vec<String>,
    delta: String,
}

#[derive(serde::Deserialize)]
struct PrfVec {
    key: String,
    delta: String,
    len: usize,
    out: String,
}

#[derive(serde::Deserialize)]
struct EncryptVec {
    key: String,
    nonce: String,
    ad: Vec<String>,
    tau: usize,
    msg: String,
    ct: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../../../tests/vectors/aez_v5.json")).expect("vector file")
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

#[test]
fn extract_matches_the_reference() {
    for v in vectors().extract {
        let k = Key::extract(&h(&v.input));
        let mut got = Vec::new();
        for part in [k.i, k.j, k.l] {
            got.extend_from_slice(&part.to_be_bytes());
        }
        assert_eq!(hex::encode(got), v.out, "extract({})", v.input);
    }
}

#[test]
fn hash_matches_the_reference() {
    for (n, v) in vectors().hash.into_iter().enumerate() {
        let k = Key::extract(&h(&v.key));
        let tweak: Vec<Vec<u8>> = v.tweak.iter().map(|s| h(s)).collect();
        let (nonce, ad) = tweak.split_first().expect("a nonce");
        let ad: Vec<&[u8]> = ad.iter().map(Vec::as_slice).collect();
        let delta = k.hash(u128::from(v.tau_bits), nonce, &ad);
        assert_eq!(hex::encode(delta.to_be_bytes()), v.delta, "hash vector {n}");
    }
}

#[test]
fn prf_matches_the_reference() {
    for (n, v) in vectors().prf.into_iter().enumerate() {
        let k = Key::extract(&h(&v.key));
        let mut out = vec![0u8; v.len];
        k.prf(load(&h(&v.delta)), &mut out);
        assert_eq!(hex::encode(out), v.out, "prf vector {n}");
    }
}

#[test]
fn encrypt_and_decrypt_match_the_reference() {
    for (n, v) in vectors().encrypt.into_iter().enumerate() {
        let (key, nonce, msg) = (h(&v.key), h(&v.nonce), h(&v.msg));
        let ad: Vec<Vec<u8>> = v.ad.iter().map(|s| h(s)).collect();
        let ad: Vec<&[u8]> = ad.iter().map(Vec::as_slice).collect();
        let ct = encrypt(&key, &nonce, &ad, v.tau, &msg);
        assert_eq!(
            hex::encode(&ct),
            v.ct,
            "encrypt vector {n} (|M| = {})",
            msg.len()
        );
        let back = decrypt(&key, &nonce, &ad, v.tau, &ct).expect("decrypts");
        assert_eq!(back.as_slice(), msg.as_slice(), "decrypt vector {n}");
    }
}

#[test]
fn tampering_is_refused() {
    let key = [7u8; 32];
    let ad: &[&[u8]] = &[b"\x00salt1"];
    for len in [
        0usize, 1, 2, 3, 15, 16, 19, 27, 28, 31, 32, 47, 48, 63, 64, 65, 100,
    ] {
        let msg: Vec<u8> = (0..len as u8).collect();
        let ct = encrypt(&key, b"", ad, 4, &msg);
        assert_eq!(ct.len(), len + 4);
        assert_eq!(
            decrypt(&key, b"", ad, 4, &ct).expect("opens").as_slice(),
            &msg[..]
        );
        for bit in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                decrypt(&key, b"", ad, 4, &bad),
                Err(AuthError),
                "len {len} bit {bit}"
            );
        }
        assert_eq!(decrypt(&[8u8; 32], b"", ad, 4, &ct), Err(AuthError));
        assert_eq!(decrypt(&key, b"", &[b"\x00salt2"], 4, &ct), Err(AuthError));
        assert_eq!(decrypt(&key, b"n", ad, 4, &ct), Err(AuthError));
    }
    assert_eq!(decrypt(&key, b"", ad, 4, &[1, 2, 3]), Err(AuthError));
}

#[test]
fn gf_doubling_and_small_multiples() {
    assert_eq!(dbl(1), 2);
    assert_eq!(dbl(1 << 127), 0x87);
    let x = 0x8000_0000_0000_0000_0000_0000_0000_0001u128;
    assert_eq!(mul(3, x), dbl(x) ^ x);
    assert_eq!(mul(0, x), 0);
    assert_eq!(mul(4, x), dbl(dbl(x)));
}
