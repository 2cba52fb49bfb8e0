//! The wallet key store: a seed, the keys derived from it, and the wallet file.
//!
//! Keys: key `i` has the ed25519 secret `SHA-256("quarry/wallet/key/v1" || seed || i as u32 LE)`.
//! The 32-byte seed is the only secret; it is shown to the user as a 24-word BIP-39 phrase.
//!
//! The wallet file is JSON:
//!
//! ```json
//! { "format": "quarry-wallet", "version": 1, "network": "regtest",
//!   "secret": { "seed": "<hex>", "next_index": 3, "multisig": [...] },
//!   "checksum": "<hex>" }
//! ```
//!
//! or, encrypted with a passphrase:
//!
//! ```json
//! { "format": "quarry-wallet", "version": 1, "network": "regtest",
//!   "encryption": { "kdf": "argon2id", "kdf_version": 19, "m_cost_kib": 19456, "t_cost": 2,
//!                   "p_cost": 1, "salt": "<16 bytes hex>", "key_check": "<hex>",
//!                   "cipher": "xchacha20poly1305", "nonce": "<24 bytes hex>",
//!                   "ciphertext": "<hex>" } }
//! ```
//!
//! Encryption: Argon2id (parameters and salt in the file) stretches the passphrase into 64 bytes;
//! the first 32 are the XChaCha20-Poly1305 key, the SHA-256 of the last 32 is `key_check`, which
//! tells a wrong passphrase apart from a damaged ciphertext. The secret part (the same JSON
//! object as `secret` above) is sealed with a fresh random nonce on every save; the header
//! (format, version, network, KDF parameters, salt, key check, cipher) is the associated data,
//! so altering any of it is detected. A plaintext file carries a SHA-256 `checksum` over header
//! and secret instead, which catches damage (not tampering).
//!
//! Saves are atomic (temporary file, fsync, rename) with mode 0600 on unix; an operation that
//! fails leaves the file as it was.

use crate::consensus::Network;
use crate::primitives::{Address, AddressKind};
use crate::script::templates::pubkey_hash;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The `format` field of every wallet file.
pub const FILE_FORMAT: &str = "quarry-wallet";
/// The wallet file version this code writes and reads.
pub const FILE_VERSION: u32 = 1;
/// How many keys past the handed-out ones [`Wallet::key_for_hash`] looks at.
pub const LOOKAHEAD: u32 = 20;
/// Argon2id memory cost for new wallets, in KiB (OWASP's minimum recommendation).
pub const ARGON2_M_COST_KIB: u32 = 19_456;
/// Argon2id iterations for new wallets.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id parallelism for new wallets.
pub const ARGON2_P_COST: u32 = 1;
/// Upper bounds accepted from a file, so a damaged or hostile file cannot demand absurd resources.
const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 64;

const KEY_DOMAIN: &[u8] = b"quarry/wallet/key/v1";
const KEY_CHECK_DOMAIN: &[u8] = b"quarry/wallet/key-check/v1";
const CHECKSUM_DOMAIN: &[u8] = b"quarry/wallet/checksum/v1";
const KDF_NAME: &str = "argon2id";
const CIPHER_NAME: &str = "xchacha20poly1305";

/// What went wrong with a wallet, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("no wallet at {}: create one with `quarry wallet create`", path.display())]
    NotFound { path: PathBuf },
    #[error("wallet file {} already exists: refusing to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("wallet {} is encrypted: pass --passphrase (or set QUARRY_WALLET_PASSPHRASE)", path.display())]
    PassphraseRequired { path: PathBuf },
    #[error("wrong passphrase for wallet {}", path.display())]
    WrongPassphrase { path: PathBuf },
    #[error("the passphrase is empty: choose a non-empty one, or leave the wallet unencrypted")]
    EmptyPassphrase,
    #[error(
        "wallet file {} is corrupt ({detail}): restore it from your seed phrase with \
         `quarry wallet create --import-seed`",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "wallet file {} has format version {version}, but this quarry reads only version {FILE_VERSION}: \
         upgrade quarry",
        path.display()
    )]
    UnsupportedVersion { path: PathBuf, version: u64 },
    #[error("wallet {} belongs to network {found}, not {expected}", path.display())]
    WrongNetwork { path: PathBuf, found: String, expected: Network },
    #[error("invalid seed phrase: {0}")]
    InvalidSeedPhrase(String),
    #[error("wallet {} has handed out every key index (2^32)", path.display())]
    KeysExhausted { path: PathBuf },
    #[error("wallet file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A multisig escrow the wallet takes part in (remembered so it can find and spend its coins).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MultisigRecord {
    pub threshold: usize,
    #[serde(with = "hex_keys")]
    pub pubkeys: Vec<[u8; 32]>,
    pub redeem_script_hex: String,
    pub address: String,
}

/// Public keys as hex strings in the file.
mod hex_keys {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(keys: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(keys.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let strings = Vec::<String>::deserialize(d)?;
        strings
            .iter()
            .map(|s| {
                let bytes = hex::decode(s).map_err(D::Error::custom)?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    D::Error::custom(format!("public key of {} bytes, expected 32", bytes.len()))
                })
            })
            .collect()
    }
}

/// Argon2id parameters and salt of an encrypted wallet, plus the derived key (kept in memory so
/// saves do not re-run the KDF).
struct Encryption {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: [u8; 16],
    key_check: [u8; 32],
    key: Zeroizing<[u8; 32]>,
}

/// An output locked to one of the wallet's keys until a height: P2SH of the redeem script
/// `<height> OP_CHECKLOCKTIMEVERIFY OP_DROP <P2PKH of the key>`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedRecord {
    /// First block height at which it can be spent.
    pub height: u32,
    /// Which wallet key unlocks it.
    pub key_index: u32,
    /// The redeem script, hex.
    pub redeem_script_hex: String,
    /// Its P2SH address.
    pub address: String,
}

/// An open wallet: its seed, how many keys it has handed out, and its multisig escrows.
pub struct Wallet {
    path: PathBuf,
    network: Network,
    seed: Zeroizing<[u8; 32]>,
    next_index: u32,
    multisig: Vec<MultisigRecord>,
    locked: Vec<LockedRecord>,
    encryption: Option<Encryption>,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("path", &self.path)
            .field("network", &self.network)
            .field("seed", &"<redacted>")
            .field("next_index", &self.next_index)
            .field("multisig", &self.multisig.len())
            .field("encrypted", &self.encryption.is_some())
            .finish()
    }
}

// ---- file layout ----

#[derive(Serialize, Deserialize)]
struct WalletFile {
    format: String,
    version: u32,
    network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<EncryptedPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<SecretPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct EncryptedPart {
    kdf: String,
    kdf_version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
    key_check: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct SecretPart {
    seed: String,
    next_index: u32,
    #[serde(default)]
    multisig: Vec<MultisigRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    locked: Vec<LockedRecord>,
}

impl Drop for SecretPart {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// The associated data of an encrypted file: everything in it but nonce and ciphertext.
#[derive(Serialize)]
struct Header<'a> {
    format: &'a str,
    version: u32,
    network: &'a str,
    kdf: &'a str,
    kdf_version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: &'a str,
    key_check: &'a str,
    cipher: &'a str,
}

impl Header<'_> {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("header serializes")
    }
}

fn plain_checksum(network: &str, secret_json: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(CHECKSUM_DOMAIN);
    h.update(FILE_FORMAT.as_bytes());
    h.update(FILE_VERSION.to_le_bytes());
    h.update((network.len() as u32).to_le_bytes());
    h.update(network.as_bytes());
    h.update(secret_json);
    hex::encode(h.finalize())
}

/// Runs Argon2id; returns (encryption key, key check).
fn derive_key(
    passphrase: &str,
    salt: &[u8],
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), argon2::Error> {
    let params = Params::new(m_cost_kib, t_cost, p_cost, Some(64))?;
    let mut out = Zeroizing::new([0u8; 64]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(
        passphrase.as_bytes(),
        salt,
        &mut out[..],
    )?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&out[..32]);
    let mut h = Sha256::new();
    h.update(KEY_CHECK_DOMAIN);
    h.update(&out[32..]);
    Ok((key, h.finalize().into()))
}

fn decode_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = Zeroizing::new(hex::decode(s).map_err(|e| format!("{what}: {e}"))?);
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{what} of {} bytes, expected {N}", bytes.len()))
}

impl Wallet {
    /// Creates a new wallet file at `path` (refusing to overwrite), from `seed` (or 32 random
    /// bytes from OsRng), encrypted when `passphrase` is Some. Derives address 0 immediately.
    /// A missing parent directory is created (mode 0700 on unix).
    pub fn create(
        path: &Path,
        network: Network,
        seed: Option<[u8; 32]>,
        passphrase: Option<&str>,
    ) -> Result<Wallet, KeystoreError> {
        if path.symlink_metadata().is_ok() {
            return Err(KeystoreError::AlreadyExists { path: path.to_path_buf() });
        }
        let seed = Zeroizing::new(seed.unwrap_or_else(|| {
            let mut s = [0u8; 32];
            OsRng.fill_bytes(&mut s);
            s
        }));
        let encryption = match passphrase {
            None => None,
            Some(p) => Some(Self::new_encryption(p)?),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                create_dir_private(parent)
                    .map_err(|source| KeystoreError::Io { path: parent.into(), source })?;
            }
        }
        let wallet = Wallet {
            path: path.to_path_buf(),
            network,
            seed,
            next_index: 1,
            multisig: Vec::new(),
            locked: Vec::new(),
            encryption,
        };
        // The existence check above is not atomic with the save; check again right before the
        // rename to narrow the window.
        wallet.write_file(true)?;
        Ok(wallet)
    }

    fn new_encryption(passphrase: &str) -> Result<Encryption, KeystoreError> {
        if passphrase.is_empty() {
            return Err(KeystoreError::EmptyPassphrase);
        }
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let (key, key_check) = derive_key(passphrase, &salt, ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST)
            .expect("constant Argon2 parameters are valid");
        Ok(Encryption {
            m_cost_kib: ARGON2_M_COST_KIB,
            t_cost: ARGON2_T_COST,
            p_cost: ARGON2_P_COST,
            salt,
            key_check,
            key,
        })
    }

    /// Opens an existing wallet; checks the network matches `network`. A passphrase given for
    /// an unencrypted wallet is ignored (see [`Wallet::is_encrypted`]).
    pub fn open(path: &Path, network: Network, passphrase: Option<&str>) -> Result<Wallet, KeystoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeystoreError::NotFound { path: path.to_path_buf() })
            }
            Err(source) => return Err(KeystoreError::Io { path: path.to_path_buf(), source }),
        };
        Self::from_file_bytes(path, &bytes, network, passphrase)
    }

    /// The wallet in `bytes`, the contents of the file at `path` (which only names it in
    /// errors and is where later saves go): what [`Wallet::open`] does once it has read the
    /// file. The bytes are untrusted (a damaged or hand-edited file): every refusal is a
    /// [`KeystoreError`], never a panic.
    pub fn from_file_bytes(
        path: &Path,
        bytes: &[u8],
        network: Network,
        passphrase: Option<&str>,
    ) -> Result<Wallet, KeystoreError> {
        let corrupt = |detail: String| KeystoreError::Corrupt { path: path.to_path_buf(), detail };

        // Format and version first, so a newer file gets "upgrade" rather than "corrupt".
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FILE_FORMAT) {
            return Err(corrupt(format!("not a quarry wallet file (no \"format\": \"{FILE_FORMAT}\")")));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FILE_VERSION) => {}
            Some(v) if v > u64::from(FILE_VERSION) => {
                return Err(KeystoreError::UnsupportedVersion { path: path.to_path_buf(), version: v })
            }
            _ => return Err(corrupt("missing or invalid \"version\"".into())),
        }
        let file: WalletFile =
            serde_json::from_value(value).map_err(|e| corrupt(format!("unexpected layout: {e}")))?;
        let file_network: Network = file.network.parse().map_err(corrupt)?;
        if file_network != network {
            return Err(KeystoreError::WrongNetwork {
                path: path.to_path_buf(),
                found: file.network.clone(),
                expected: network,
            });
        }

        let (secret, encryption) = match (&file.encryption, &file.secret) {
            (Some(enc), None) => {
                let Some(passphrase) = passphrase else {
                    return Err(KeystoreError::PassphraseRequired { path: path.to_path_buf() });
                };
                let (plaintext, encryption) = Self::decrypt(path, &file, enc, passphrase)?;
                let secret: SecretPart = serde_json::from_slice(&plaintext)
                    .map_err(|e| corrupt(format!("decrypted secret part: {e}")))?;
                (secret, Some(encryption))
            }
            (None, Some(secret)) => {
                let json = Zeroizing::new(serde_json::to_vec(secret).expect("secret serializes"));
                if file.checksum.as_deref() != Some(plain_checksum(&file.network, &json).as_str()) {
                    return Err(corrupt("checksum mismatch".into()));
                }
                let secret = SecretPart {
                    seed: secret.seed.clone(),
                    next_index: secret.next_index,
                    multisig: secret.multisig.clone(),
                    locked: secret.locked.clone(),
                };
                (secret, None)
            }
            (Some(_), Some(_)) => return Err(corrupt("both \"encryption\" and \"secret\" present".into())),
            (None, None) => return Err(corrupt("neither \"encryption\" nor \"secret\" present".into())),
        };
        let seed = Zeroizing::new(decode_array::<32>(&secret.seed, "seed").map_err(corrupt)?);
        Ok(Wallet {
            path: path.to_path_buf(),
            network,
            seed,
            next_index: secret.next_index,
            multisig: secret.multisig.clone(),
            locked: secret.locked.clone(),
            encryption,
        })
    }

    fn decrypt(
        path: &Path,
        file: &WalletFile,
        enc: &EncryptedPart,
        passphrase: &str,
    ) -> Result<(Zeroizing<Vec<u8>>, Encryption), KeystoreError> {
        let corrupt = |detail: String| KeystoreError::Corrupt { path: path.to_path_buf(), detail };
        if enc.kdf != KDF_NAME || enc.kdf_version != 0x13 {
            return Err(corrupt(format!("unknown key derivation {:?} version {}", enc.kdf, enc.kdf_version)));
        }
        if enc.cipher != CIPHER_NAME {
            return Err(corrupt(format!("unknown cipher {:?}", enc.cipher)));
        }
        if enc.m_cost_kib > MAX_M_COST_KIB || enc.t_cost > MAX_T_COST || enc.p_cost > MAX_P_COST {
            return Err(corrupt(format!(
                "Argon2 parameters out of range (m={} KiB, t={}, p={})",
                enc.m_cost_kib, enc.t_cost, enc.p_cost
            )));
        }
        let salt = decode_array::<16>(&enc.salt, "salt").map_err(corrupt)?;
        let key_check = decode_array::<32>(&enc.key_check, "key_check").map_err(corrupt)?;
        let nonce = decode_array::<24>(&enc.nonce, "nonce").map_err(corrupt)?;
        let ciphertext = hex::decode(&enc.ciphertext).map_err(|e| corrupt(format!("ciphertext: {e}")))?;
        let (key, check) = derive_key(passphrase, &salt, enc.m_cost_kib, enc.t_cost, enc.p_cost)
            .map_err(|e| corrupt(format!("Argon2 parameters: {e}")))?;
        if check != key_check {
            return Err(KeystoreError::WrongPassphrase { path: path.to_path_buf() });
        }
        let header = Header {
            format: &file.format,
            version: file.version,
            network: &file.network,
            kdf: &enc.kdf,
            kdf_version: enc.kdf_version,
            m_cost_kib: enc.m_cost_kib,
            t_cost: enc.t_cost,
            p_cost: enc.p_cost,
            salt: &enc.salt,
            key_check: &enc.key_check,
            cipher: &enc.cipher,
        };
        let aad = header.bytes();
        let plaintext = XChaCha20Poly1305::new(Key::from_slice(&key[..]))
            .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad })
            .map_err(|_| {
                corrupt("encrypted part fails authentication: it or the header was altered".into())
            })?;
        let encryption = Encryption {
            m_cost_kib: enc.m_cost_kib,
            t_cost: enc.t_cost,
            p_cost: enc.p_cost,
            salt,
            key_check,
            key,
        };
        Ok((Zeroizing::new(plaintext), encryption))
    }

    /// The network the wallet belongs to.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The wallet file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is encrypted with a passphrase.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// The key at `index`: secret = SHA-256("quarry/wallet/key/v1" || seed || index as u32 LE).
    pub fn key(&self, index: u32) -> SigningKey {
        let mut h = Sha256::new();
        h.update(KEY_DOMAIN);
        h.update(&self.seed[..]);
        h.update(index.to_le_bytes());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&h.finalize());
        SigningKey::from_bytes(&secret)
    }

    /// The P2PKH hash of key `index`.
    pub fn pubkey_hash(&self, index: u32) -> [u8; 32] {
        pubkey_hash(&self.key(index).verifying_key().to_bytes())
    }

    /// P2PKH address of key `index`.
    pub fn address(&self, index: u32) -> Address {
        Address { hrp: self.network.address_hrp(), kind: AddressKind::P2pkh, hash: self.pubkey_hash(index) }
    }

    /// Number of keys handed out so far (indices 0..count).
    pub fn key_count(&self) -> u32 {
        self.next_index
    }

    /// Hands out the next key index and saves the file (atomically). Returns (index, address).
    /// On error nothing changes, in memory or on disk.
    pub fn new_address(&mut self) -> Result<(u32, Address), KeystoreError> {
        let index = self.next_index;
        self.next_index =
            index.checked_add(1).ok_or_else(|| KeystoreError::KeysExhausted { path: self.path.clone() })?;
        if let Err(e) = self.save() {
            self.next_index = index;
            return Err(e);
        }
        Ok((index, self.address(index)))
    }

    /// All handed-out (index, address) pairs.
    pub fn addresses(&self) -> Vec<(u32, Address)> {
        (0..self.next_index).map(|i| (i, self.address(i))).collect()
    }

    /// The key whose P2PKH hash is `hash`, among handed-out keys plus a lookahead of
    /// [`LOOKAHEAD`].
    pub fn key_for_hash(&self, hash: &[u8; 32]) -> Option<(u32, SigningKey)> {
        let end = self.next_index.saturating_add(LOOKAHEAD);
        (0..end).find_map(|i| {
            let key = self.key(i);
            (pubkey_hash(&key.verifying_key().to_bytes()) == *hash).then_some((i, key))
        })
    }

    /// The multisig escrows the wallet remembers.
    pub fn multisig(&self) -> &[MultisigRecord] {
        &self.multisig
    }

    /// The height-locked outputs the wallet remembers.
    pub fn locked(&self) -> &[LockedRecord] {
        &self.locked
    }

    /// Remembers a height-locked output script and saves; same address: ignored. On error
    /// nothing changes.
    pub fn add_locked(&mut self, rec: LockedRecord) -> Result<(), KeystoreError> {
        if self.locked.iter().any(|r| r.address == rec.address) {
            return Ok(());
        }
        self.locked.push(rec);
        if let Err(e) = self.save() {
            self.locked.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Remembers a multisig escrow and saves; a record with the same address is ignored.
    /// On error nothing changes, in memory or on disk.
    pub fn add_multisig(&mut self, rec: MultisigRecord) -> Result<(), KeystoreError> {
        if self.multisig.iter().any(|r| r.address == rec.address) {
            return Ok(());
        }
        self.multisig.push(rec);
        if let Err(e) = self.save() {
            self.multisig.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Encrypts the wallet with a new passphrase (None: store it unencrypted) and saves.
    /// On error nothing changes, in memory or on disk.
    pub fn change_passphrase(&mut self, passphrase: Option<&str>) -> Result<(), KeystoreError> {
        let new = match passphrase {
            None => None,
            Some(p) => Some(Self::new_encryption(p)?),
        };
        let old = std::mem::replace(&mut self.encryption, new);
        if let Err(e) = self.save() {
            self.encryption = old;
            return Err(e);
        }
        Ok(())
    }

    /// The seed as a 24-word BIP-39 English mnemonic.
    pub fn seed_phrase(&self) -> String {
        bip39::Mnemonic::from_entropy(&self.seed[..]).expect("32 bytes of entropy make 24 words").to_string()
    }

    /// Parses a 24-word BIP-39 English mnemonic back into a seed (case and spacing do not
    /// matter).
    pub fn seed_from_phrase(phrase: &str) -> Result<[u8; 32], KeystoreError> {
        let normalized =
            Zeroizing::new(phrase.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase());
        let words = normalized.split(' ').filter(|w| !w.is_empty()).count();
        if words != 24 {
            return Err(KeystoreError::InvalidSeedPhrase(format!("expected 24 words, got {words}")));
        }
        let mnemonic =
            bip39::Mnemonic::parse_in(bip39::Language::English, normalized.as_str()).map_err(|e| {
                KeystoreError::InvalidSeedPhrase(match e {
                    bip39::Error::UnknownWord(i) => {
                        format!(
                            "word {} ({:?}) is not in the BIP-39 English list",
                            i + 1,
                            normalized.split(' ').nth(i).unwrap_or("")
                        )
                    }
                    bip39::Error::InvalidChecksum => {
                        "checksum does not match: a word is wrong or out of order".into()
                    }
                    other => other.to_string(),
                })
            })?;
        let (entropy, len) = mnemonic.to_entropy_array();
        let entropy = Zeroizing::new(entropy);
        if len != 32 {
            return Err(KeystoreError::InvalidSeedPhrase(format!("{len} bytes of entropy, expected 32")));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&entropy[..32]);
        Ok(seed)
    }

    /// Writes the file atomically (temp file + fsync + rename), permissions 0600 on unix.
    pub fn save(&self) -> Result<(), KeystoreError> {
        self.write_file(false)
    }

    /// The file contents [`Wallet::save`] writes (encrypted ones with a fresh nonce).
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let secret = SecretPart {
            seed: hex::encode(&self.seed[..]),
            next_index: self.next_index,
            multisig: self.multisig.clone(),
            locked: self.locked.clone(),
        };
        let secret_json = Zeroizing::new(serde_json::to_vec(&secret).expect("secret serializes"));
        let network = self.network.name().to_string();
        let file = match &self.encryption {
            None => WalletFile {
                format: FILE_FORMAT.into(),
                version: FILE_VERSION,
                checksum: Some(plain_checksum(&network, &secret_json)),
                network,
                encryption: None,
                secret: Some(secret),
            },
            Some(enc) => {
                let salt = hex::encode(enc.salt);
                let key_check = hex::encode(enc.key_check);
                let aad = Header {
                    format: FILE_FORMAT,
                    version: FILE_VERSION,
                    network: &network,
                    kdf: KDF_NAME,
                    kdf_version: 0x13,
                    m_cost_kib: enc.m_cost_kib,
                    t_cost: enc.t_cost,
                    p_cost: enc.p_cost,
                    salt: &salt,
                    key_check: &key_check,
                    cipher: CIPHER_NAME,
                }
                .bytes();
                let mut nonce = [0u8; 24];
                OsRng.fill_bytes(&mut nonce);
                let ciphertext = XChaCha20Poly1305::new(Key::from_slice(&enc.key[..]))
                    .encrypt(XNonce::from_slice(&nonce), Payload { msg: &secret_json, aad: &aad })
                    .expect("XChaCha20-Poly1305 encryption of a small message cannot fail");
                WalletFile {
                    format: FILE_FORMAT.into(),
                    version: FILE_VERSION,
                    network,
                    encryption: Some(EncryptedPart {
                        kdf: KDF_NAME.into(),
                        kdf_version: 0x13,
                        m_cost_kib: enc.m_cost_kib,
                        t_cost: enc.t_cost,
                        p_cost: enc.p_cost,
                        salt,
                        key_check,
                        cipher: CIPHER_NAME.into(),
                        nonce: hex::encode(nonce),
                        ciphertext: hex::encode(ciphertext),
                    }),
                    secret: None,
                    checksum: None,
                }
            }
        };
        let mut out = Zeroizing::new(serde_json::to_vec_pretty(&file).expect("wallet file serializes"));
        out.push(b'\n');
        out
    }

    fn write_file(&self, must_not_exist: bool) -> Result<(), KeystoreError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeystoreError::Io { path, source }
        };
        let contents = self.to_file_bytes();
        let mut tmp_name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "wallet".into());
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeystoreError::Io { path: tmp, source }),
        }
        let result = (|| {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&contents).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
            drop(f);
            if must_not_exist && self.path.symlink_metadata().is_ok() {
                return Err(KeystoreError::AlreadyExists { path: self.path.clone() });
            }
            fs::rename(&tmp, &self.path).map_err(io_err(&self.path))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            return result;
        }
        // Make the rename durable; some filesystems cannot fsync a directory, which is fine.
        #[cfg(unix)]
        if let Some(parent) = self.path.parent() {
            let dir = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn create_dir_private(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery staple";

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn read_json(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn create_open_round_trip_plain() {
        let d = dir();
        let p = d.path().join("wallet.json");
        let w = Wallet::create(&p, Network::Regtest, None, None).unwrap();
        assert!(!w.is_encrypted());
        assert_eq!(w.key_count(), 1);
        assert_eq!(w.network(), Network::Regtest);
        assert_eq!(w.path(), p.as_path());
        let json = read_json(&p);
        assert_eq!(json["format"], "quarry-wallet");
        assert_eq!(json["network"], "regtest");
        let r = Wallet::open(&p, Network::Regtest, None).unwrap();
        assert_eq!(r.seed_phrase(), w.seed_phrase());
        assert_eq!(r.addresses(), w.addresses());
        assert!(!d.path().join("wallet.json.tmp").exists());
        // A passphrase for a plaintext wallet is ignored.
        assert!(Wallet::open(&p, Network::Regtest, Some("x")).is_ok());
    }

    #[test]
    fn create_open_round_trip_encrypted() {
        let d = dir();
        let p = d.path().join("wallet.json");
        let w = Wallet::create(&p, Network::Dev, Some([3; 32]), Some(PASS)).unwrap();
        assert!(w.is_encrypted());
        let text = fs::read_to_string(&p).unwrap();
        assert!(!text.contains(&hex::encode([3u8; 32])), "seed must not be stored in clear");
        let json = read_json(&p);
        assert_eq!(json["encryption"]["kdf"], "argon2id");
        assert_eq!(json["encryption"]["m_cost_kib"], 19456);
        assert!(json.get("secret").is_none());
        let r = Wallet::open(&p, Network::Dev, Some(PASS)).unwrap();
        assert!(r.is_encrypted());
        assert_eq!(r.addresses(), w.addresses());
        assert_eq!(r.address(0).hrp, "qdev");
    }

    #[test]
    fn encrypted_saves_use_fresh_nonces() {
        let d = dir();
        let p = d.path().join("w");
        let mut w = Wallet::create(&p, Network::Regtest, Some([1; 32]), Some(PASS)).unwrap();
        let n1 = read_json(&p)["encryption"]["nonce"].clone();
        w.new_address().unwrap();
        let n2 = read_json(&p)["encryption"]["nonce"].clone();
        assert_ne!(n1, n2);
        assert_eq!(Wallet::open(&p, Network::Regtest, Some(PASS)).unwrap().key_count(), 2);
    }

    #[test]
    fn deterministic_keys_fixed_vector() {
        let d = dir();
        let w = Wallet::create(&d.path().join("a"), Network::Regtest, Some([7; 32]), None).unwrap();
        let w2 = Wallet::create(&d.path().join("b"), Network::Regtest, Some([7; 32]), Some(PASS)).unwrap();
        let mut h = Sha256::new();
        h.update(b"quarry/wallet/key/v1");
        h.update([7u8; 32]);
        h.update(0u32.to_le_bytes());
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(w.key(0).to_bytes(), expected);
        let addr = w.address(0);
        println!("seed [7;32] index 0: {addr}");
        assert_eq!(addr.kind, AddressKind::P2pkh);
        assert_eq!(addr.hash, pubkey_hash(&w.key(0).verifying_key().to_bytes()));
        assert_eq!(addr.to_string(), "qrt1qqxdga67sjmaumya3c0yu3au5v32xejmmvasq57h52rj6z70v4x2caxyg9y");
        assert_eq!(w2.address(0), addr);
        assert_ne!(w.address(1), addr);
        assert_eq!(Address::decode(&addr.to_string(), "qrt").unwrap(), addr);
    }

    #[test]
    fn new_address_persists_across_reopen() {
        let d = dir();
        let p = d.path().join("w");
        let mut w = Wallet::create(&p, Network::Regtest, None, None).unwrap();
        let (i1, a1) = w.new_address().unwrap();
        let (i2, a2) = w.new_address().unwrap();
        assert_eq!((i1, i2), (1, 2));
        assert_eq!(w.key_count(), 3);
        let r = Wallet::open(&p, Network::Regtest, None).unwrap();
        assert_eq!(r.key_count(), 3);
        assert_eq!(r.addresses(), vec![(0, w.address(0)), (1, a1), (2, a2)]);
    }

    #[test]
    fn multisig_records_persist_and_dedupe() {
        let d = dir();
        let p = d.path().join("w");
        let mut w = Wallet::create(&p, Network::Regtest, None, Some(PASS)).unwrap();
        let rec = MultisigRecord {
            threshold: 2,
            pubkeys: vec![[1; 32], [2; 32], [3; 32]],
            redeem_script_hex: "52ab".into(),
            address: "qrt1example".into(),
        };
        w.add_multisig(rec.clone()).unwrap();
        w.add_multisig(rec.clone()).unwrap();
        assert_eq!(w.multisig(), std::slice::from_ref(&rec));
        let r = Wallet::open(&p, Network::Regtest, Some(PASS)).unwrap();
        assert_eq!(r.multisig(), &[rec]);
    }

    #[test]
    fn wrong_passphrase_errors_and_file_unchanged() {
        let d = dir();
        let p = d.path().join("w");
        Wallet::create(&p, Network::Regtest, None, Some(PASS)).unwrap();
        let before = fs::read(&p).unwrap();
        let e = Wallet::open(&p, Network::Regtest, Some("wrong")).unwrap_err();
        assert!(matches!(e, KeystoreError::WrongPassphrase { .. }), "{e}");
        assert!(e.to_string().contains("wrong passphrase"));
        assert_eq!(fs::read(&p).unwrap(), before);
    }

    #[test]
    fn encrypted_without_passphrase_is_a_clear_error() {
        let d = dir();
        let p = d.path().join("w");
        Wallet::create(&p, Network::Regtest, None, Some(PASS)).unwrap();
        let e = Wallet::open(&p, Network::Regtest, None).unwrap_err();
        assert!(matches!(e, KeystoreError::PassphraseRequired { .. }));
        assert!(e.to_string().contains("--passphrase"), "{e}");
        assert!(matches!(
            Wallet::create(&d.path().join("x"), Network::Regtest, None, Some("")),
            Err(KeystoreError::EmptyPassphrase)
        ));
    }

    /// Writes `f(original)` to the file, opens it, checks the error and that the file is as
    /// written.
    fn open_damaged(
        p: &Path,
        pass: Option<&str>,
        original: &[u8],
        f: impl FnOnce(&mut Vec<u8>),
    ) -> KeystoreError {
        let mut damaged = original.to_vec();
        f(&mut damaged);
        assert_ne!(damaged, original);
        fs::write(p, &damaged).unwrap();
        let e = Wallet::open(p, Network::Regtest, pass).unwrap_err();
        assert_eq!(fs::read(p).unwrap(), damaged);
        e
    }

    /// Flips a hex digit of the string value of `field` in the JSON text.
    fn flip_in_field(bytes: &mut [u8], field: &str, offset: usize) {
        let text = std::str::from_utf8(bytes).unwrap();
        let key = format!("\"{field}\": \"");
        let at = text.find(&key).unwrap() + key.len() + offset;
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    }

    #[test]
    fn corrupt_files_give_errors_not_panics() {
        let d = dir();
        let p = d.path().join("w");
        Wallet::create(&p, Network::Regtest, None, Some(PASS)).unwrap();
        let orig = fs::read(&p).unwrap();
        let is_corrupt = |e: &KeystoreError| matches!(e, KeystoreError::Corrupt { .. });

        for len in [0, 1, orig.len() / 2, orig.len() - 3] {
            let e = open_damaged(&p, Some(PASS), &orig, |b| b.truncate(len));
            assert!(is_corrupt(&e), "truncate to {len}: {e}");
            assert!(e.to_string().contains("--import-seed"));
        }
        let e = open_damaged(&p, Some(PASS), &orig, |b| flip_in_field(b, "ciphertext", 10));
        assert!(is_corrupt(&e), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| flip_in_field(b, "nonce", 0));
        assert!(is_corrupt(&e), "{e}");
        // Header: the network name, the KDF cost, the salt, the key check, the cipher name.
        let e = open_damaged(&p, Some(PASS), &orig, |b| flip_in_field(b, "network", 2));
        assert!(is_corrupt(&e), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| {
            let t = String::from_utf8(b.clone()).unwrap().replace("\"t_cost\": 2", "\"t_cost\": 3");
            *b = t.into_bytes();
        });
        assert!(matches!(e, KeystoreError::WrongPassphrase { .. }), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| flip_in_field(b, "salt", 5));
        assert!(matches!(e, KeystoreError::WrongPassphrase { .. }), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| flip_in_field(b, "key_check", 5));
        assert!(matches!(e, KeystoreError::WrongPassphrase { .. }), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| flip_in_field(b, "cipher", 0));
        assert!(is_corrupt(&e), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| {
            let t = String::from_utf8(b.clone()).unwrap().replace("\"version\": 1", "\"version\": 2");
            *b = t.into_bytes();
        });
        assert!(matches!(e, KeystoreError::UnsupportedVersion { version: 2, .. }), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| {
            let t =
                String::from_utf8(b.clone()).unwrap().replace("\"m_cost_kib\": 19456", "\"m_cost_kib\": 1");
            *b = t.into_bytes();
        });
        assert!(is_corrupt(&e), "{e}");
        let e = open_damaged(&p, Some(PASS), &orig, |b| b[0] = 0xff);
        assert!(is_corrupt(&e), "{e}");

        // Plaintext wallets: a flipped seed digit is caught by the checksum.
        let q = d.path().join("plain");
        Wallet::create(&q, Network::Regtest, None, None).unwrap();
        let orig = fs::read(&q).unwrap();
        let e = open_damaged(&q, None, &orig, |b| flip_in_field(b, "seed", 7));
        assert!(is_corrupt(&e), "{e}");
        let e = open_damaged(&q, None, &orig, |b| b.truncate(orig.len() / 3));
        assert!(is_corrupt(&e), "{e}");
    }

    #[test]
    fn wrong_network_is_refused() {
        let d = dir();
        let p = d.path().join("w");
        Wallet::create(&p, Network::Dev, None, None).unwrap();
        let e = Wallet::open(&p, Network::Regtest, None).unwrap_err();
        assert!(matches!(e, KeystoreError::WrongNetwork { .. }));
        assert!(e.to_string().contains("belongs to network dev, not regtest"), "{e}");
    }

    #[test]
    fn missing_wallet_is_a_clear_error() {
        let d = dir();
        let e = Wallet::open(&d.path().join("nope"), Network::Regtest, None).unwrap_err();
        assert!(matches!(e, KeystoreError::NotFound { .. }));
        assert!(e.to_string().contains("quarry wallet create"));
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let d = dir();
        let p = d.path().join("w");
        Wallet::create(&p, Network::Regtest, None, None).unwrap();
        let before = fs::read(&p).unwrap();
        let e = Wallet::create(&p, Network::Regtest, None, None).unwrap_err();
        assert!(matches!(e, KeystoreError::AlreadyExists { .. }));
        assert_eq!(fs::read(&p).unwrap(), before);
    }

    #[test]
    fn create_makes_missing_parent_directory() {
        let d = dir();
        let p = d.path().join("a/b/wallet.json");
        Wallet::create(&p, Network::Regtest, None, None).unwrap();
        assert!(Wallet::open(&p, Network::Regtest, None).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn file_mode_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir();
        let p = d.path().join("w");
        // A stale, world-readable temp file is replaced, not reused.
        fs::write(d.path().join("w.tmp"), b"stale").unwrap();
        fs::set_permissions(d.path().join("w.tmp"), fs::Permissions::from_mode(0o644)).unwrap();
        let mut w = Wallet::create(&p, Network::Regtest, None, Some(PASS)).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        w.new_address().unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!d.path().join("w.tmp").exists());
    }

    #[test]
    fn failed_save_changes_nothing() {
        let d = dir();
        let p = d.path().join("w");
        let mut w = Wallet::create(&p, Network::Regtest, None, Some(PASS)).unwrap();
        let before = fs::read(&p).unwrap();
        // A non-empty directory where the temp file goes makes every save fail (even as root).
        fs::create_dir_all(d.path().join("w.tmp/blocker")).unwrap();
        let e = w.new_address().unwrap_err();
        assert!(matches!(e, KeystoreError::Io { .. }), "{e}");
        let rec = MultisigRecord {
            threshold: 1,
            pubkeys: vec![[1; 32]],
            redeem_script_hex: "51".into(),
            address: "qrt1x".into(),
        };
        assert!(w.add_multisig(rec).is_err());
        assert!(w.change_passphrase(None).is_err());
        assert_eq!(w.key_count(), 1);
        assert!(w.multisig().is_empty());
        assert!(w.is_encrypted());
        assert_eq!(fs::read(&p).unwrap(), before);
        fs::remove_dir_all(d.path().join("w.tmp")).unwrap();
        assert_eq!(w.new_address().unwrap().0, 1);
    }

    #[test]
    fn seed_phrase_round_trip_and_invalid() {
        let d = dir();
        let w = Wallet::create(&d.path().join("w"), Network::Regtest, None, None).unwrap();
        let phrase = w.seed_phrase();
        let words: Vec<&str> = phrase.split(' ').collect();
        assert_eq!(words.len(), 24);
        let seed = Wallet::seed_from_phrase(&phrase).unwrap();
        assert_eq!(seed, *w.seed);
        // Case and spacing do not matter.
        assert_eq!(
            Wallet::seed_from_phrase(&format!("  {}\n", phrase.to_uppercase().replace(' ', "  "))).unwrap(),
            seed
        );

        // Change the last (checksum-carrying) word to another valid word.
        let list = bip39::Language::English.word_list();
        let last = words[23];
        let other = list.iter().find(|&&x| x != last).unwrap();
        let mut bad = words.clone();
        bad[23] = other;
        let bad = bad.join(" ");
        // Some replacements happen to carry a valid checksum; find one that does not.
        let bad = if Wallet::seed_from_phrase(&bad).is_ok() {
            let mut ws = words.clone();
            let alt = list.iter().find(|&&x| {
                ws[23] = x;
                x != last && Wallet::seed_from_phrase(&ws.join(" ")).is_err()
            });
            ws[23] = alt.unwrap();
            ws.join(" ")
        } else {
            bad
        };
        let e = Wallet::seed_from_phrase(&bad).unwrap_err();
        assert!(matches!(e, KeystoreError::InvalidSeedPhrase(_)));
        assert!(e.to_string().contains("checksum"), "{e}");

        let e = Wallet::seed_from_phrase(&words[..12].join(" ")).unwrap_err();
        assert!(e.to_string().contains("24 words"), "{e}");
        let mut typo = words.clone();
        typo[3] = "notaword";
        let e = Wallet::seed_from_phrase(&typo.join(" ")).unwrap_err();
        assert!(e.to_string().contains("word 4"), "{e}");

        // The phrase restores the same wallet.
        let r = Wallet::create(&d.path().join("r"), Network::Regtest, Some(seed), None).unwrap();
        assert_eq!(r.address(0), w.address(0));
    }

    #[test]
    fn key_for_hash_finds_keys_within_lookahead() {
        let d = dir();
        let w = Wallet::create(&d.path().join("w"), Network::Regtest, Some([9; 32]), None).unwrap();
        for i in [0, 1, LOOKAHEAD] {
            let (idx, key) = w.key_for_hash(&w.pubkey_hash(i)).unwrap();
            assert_eq!(idx, i);
            assert_eq!(key.to_bytes(), w.key(i).to_bytes());
        }
        assert!(w.key_for_hash(&w.pubkey_hash(LOOKAHEAD + 1)).is_none());
        assert!(w.key_for_hash(&[0; 32]).is_none());
    }

    #[test]
    fn change_passphrase_round_trip() {
        let d = dir();
        let p = d.path().join("w");
        let mut w = Wallet::create(&p, Network::Regtest, None, None).unwrap();
        w.change_passphrase(Some(PASS)).unwrap();
        assert!(matches!(
            Wallet::open(&p, Network::Regtest, None),
            Err(KeystoreError::PassphraseRequired { .. })
        ));
        let mut r = Wallet::open(&p, Network::Regtest, Some(PASS)).unwrap();
        r.change_passphrase(None).unwrap();
        assert_eq!(Wallet::open(&p, Network::Regtest, None).unwrap().address(0), w.address(0));
    }
}
