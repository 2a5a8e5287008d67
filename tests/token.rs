use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::random::RandomError;
use liveguard::token::{EncryptedTokens, SignedTokens};
use liveguard::{SecureRandom, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct User { user_id: u64, name: String }
struct Counter(u8);
impl SecureRandom for Counter {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for b in dest { *b = self.0; self.0 = self.0.wrapping_add(1); }
        Ok(())
    }
}
#[test]
fn generate() {
    let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(vec![b'k'; 64]).unwrap());
    let now = Timestamp::from_unix_millis(1_700_000_000_000);
    let u = User { user_id: 42, name: "alice".into() };
    let s = SignedTokens::new(&ring, "user auth").sign(&u, now).unwrap();
    let e = EncryptedTokens::new(&ring, "user auth").encrypt(&u, now, &mut Counter(0)).unwrap();
    println!("SIGNED {s}\nSEALED {e}");
}
