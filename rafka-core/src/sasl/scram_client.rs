//! The SCRAM client (RFC 5802 section 5), sans IO: what a Kafka client
//! sends, for rafka's own tools and tests (the wire client, the CLI).
//! It refuses a server that changes its nonce, asks for iterations
//! outside Kafka's range, or cannot prove it knows the credential.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::scram::{
    constant_time_eq, xor, ScramMechanism, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN,
};
use super::scram_server::escape_name;

/// Random bytes in the client's nonce (base64: 32 chars).
const CLIENT_NONCE_BYTES: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    #[error("malformed server message: {0}")]
    InvalidEncoding(&'static str),
    #[error("the server's nonce does not extend ours")]
    NonceMismatch,
    #[error("the server asks for {0} iterations, outside {SCRAM_ITERATIONS_MIN}..={SCRAM_ITERATIONS_MAX}")]
    Iterations(u32),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("the server's signature is wrong")]
    InvalidServerSignature,
    #[error("message out of order")]
    OutOfOrder,
    #[error("no random bytes for a nonce")]
    NoRandom,
}

/// One exchange, client side: `client_first`, `client_final(server
/// first)`, `verify(server final)`, in that order.
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: Vec<u8>,
    nonce: String,
    state: ClientState,
}

/// The password stays out of logs.
impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

enum ClientState {
    Start,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Over,
}

impl ScramClient {
    pub fn new(
        mechanism: ScramMechanism,
        user: &str,
        password: &[u8],
    ) -> Result<ScramClient, ScramClientError> {
        let mut bytes = [0u8; CLIENT_NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|_| ScramClientError::NoRandom)?;
        Ok(Self::with_nonce(
            mechanism,
            user,
            password,
            BASE64.encode(bytes),
        ))
    }

    /// A client with a given nonce (base64 characters: no `,`).
    pub fn with_nonce(
        mechanism: ScramMechanism,
        user: &str,
        password: &[u8],
        nonce: String,
    ) -> ScramClient {
        assert!(
            !nonce.is_empty()
                && nonce
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b','),
            "invalid SCRAM client nonce"
        );
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_vec(),
            nonce,
            state: ClientState::Start,
        }
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", escape_name(&self.user), self.nonce)
    }

    /// `n,,n=<user>,r=<nonce>`.
    pub fn client_first(&mut self) -> Result<Vec<u8>, ScramClientError> {
        match self.state {
            ClientState::Start => self.state = ClientState::SentFirst,
            _ => return Err(ScramClientError::OutOfOrder),
        }
        Ok(format!("n,,{}", self.client_first_bare()).into_bytes())
    }

    /// Answers server-first with the proof.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramClientError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(ScramClientError::OutOfOrder);
        }
        self.state = ClientState::Over;
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::InvalidEncoding("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(error.to_string()));
        }
        let mut fields = text.split(',');
        let mut field = |prefix: &str, what| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(prefix))
                .ok_or(ScramClientError::InvalidEncoding(what))
        };
        let nonce = field("r=", "no nonce")?;
        let salt = field("s=", "no salt")?;
        let iterations = field("i=", "no iterations")?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramClientError::NonceMismatch);
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| ScramClientError::InvalidEncoding("bad salt"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| ScramClientError::InvalidEncoding("bad iterations"))?;
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
            return Err(ScramClientError::Iterations(iterations));
        }
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = m.client_key(&salted);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare());
        let signature = m.hmac(&m.stored_key(&client_key), auth_message.as_bytes());
        let proof = xor(&client_key, &signature);
        let server_signature = m.hmac(&m.server_key(&salted), auth_message.as_bytes());
        self.state = ClientState::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server knew the credential too.
    pub fn verify(&mut self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let state = std::mem::replace(&mut self.state, ClientState::Over);
        let ClientState::SentFinal { server_signature } = state else {
            return Err(ScramClientError::OutOfOrder);
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramClientError::InvalidEncoding("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(error.to_string()));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramClientError::InvalidEncoding("no verifier"))?;
        if constant_time_eq(&signature, &server_signature) {
            Ok(())
        } else {
            Err(ScramClientError::InvalidServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc7677_client() -> ScramClient {
        ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            b"pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
    }

    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    #[test]
    fn rfc7677_exchange() {
        let mut client = rfc7677_client();
        assert_eq!(
            client.client_first().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        assert_eq!(
            client.client_final(SERVER_FIRST).unwrap(),
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                .to_vec()
        );
        assert_eq!(
            client.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(())
        );
        assert_eq!(client.verify(b"v="), Err(ScramClientError::OutOfOrder));
    }

    #[test]
    fn refuses_a_dishonest_server() {
        let mut client = rfc7677_client();
        client.client_first().unwrap();
        client.client_final(SERVER_FIRST).unwrap();
        assert_eq!(
            client.verify(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramClientError::InvalidServerSignature)
        );
        let cases: &[(&[u8], ScramClientError)] = &[
            (
                b"r=other,s=c2FsdA==,i=4096",
                ScramClientError::NonceMismatch,
            ),
            (
                b"r=rOprNGfwEbeRWgbNEkqO,s=c2FsdA==,i=4096",
                ScramClientError::NonceMismatch,
            ),
            (
                b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=1",
                ScramClientError::Iterations(1),
            ),
            (
                b"r=rOprNGfwEbeRWgbNEkqOx,s=!,i=4096",
                ScramClientError::InvalidEncoding("bad salt"),
            ),
            (
                b"r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==",
                ScramClientError::InvalidEncoding("no iterations"),
            ),
            (
                b"e=unknown-user",
                ScramClientError::Refused("unknown-user".into()),
            ),
        ];
        for (server_first, want) in cases {
            let mut client = rfc7677_client();
            client.client_first().unwrap();
            assert_eq!(client.client_final(server_first).as_ref(), Err(want));
            assert_eq!(
                client.client_final(SERVER_FIRST),
                Err(ScramClientError::OutOfOrder)
            );
        }
        let mut client = rfc7677_client();
        assert_eq!(
            client.client_final(SERVER_FIRST),
            Err(ScramClientError::OutOfOrder)
        );
    }

    #[test]
    fn escapes_the_user_name() {
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha512, "a,b=c", b"p", "N".into());
        assert_eq!(client.client_first().unwrap(), b"n,,n=a=2Cb=3Dc,r=N");
        assert_eq!(
            format!("{client:?}"),
            "ScramClient { mechanism: Sha512, user: \"a,b=c\", .. }"
        );
    }
}
