//! Accounts from an external OpenID Connect provider: RS256 tokens verified against its JWKS
//! (served here on a loopback port) are accepted as accounts' tokens; roles follow its claim;
//! anything else (wrong issuer, expired, unknown key, a symmetric algorithm) is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use crate::common;

use common::{TestApp, now_ms};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

/// A throwaway RSA key made for this test (it signs nothing anywhere else).
const TEST_KEY_DER_HEX: &str = concat!(
    "308204a40201000282010100e386b8df6361b4ec903ba9d8d8c669f0276e234c78dc1d0c3b79522f9034ad8e6080df28",
    "4512c5d73b5aa9320d096d7fe1afb23514380448bc042378c89d608289d8f0a9315a10fcd032e6d6203d4b01bbb236f8",
    "9fb65de8b0d714fc44b310be76d565e6e2f0299e0eae81a83e0f4a3c5c37cac89e4f5edbe625951fd8b857be867bd74f",
    "e49fc56e61f8ac78f3ba54c640da3f9fb9fc90404203006695f9274c96a576d6fa8a1e496a38139d6578cf457fdf1536",
    "1d2fce844390cab8d47bc4e73c4054e13652dce6ae018ae5ea0d56a485e841a2aca65a7af743012f88aaba18b958110e",
    "529e93b0306871f2f53f465727132497c06c1ef71b1e8dcecc9cc85502030100010282010011563fea87ae5784aa15dd",
    "c28ffc0870fbf42cbce43db379ede337f3b75b8838ffd9fa071dc24930760d99b45e6170464d0a5ffc22eb04ca8d070c",
    "b3e4a77745e31e9471f3f87eb060e5ec087762ec3ef8d022d7ad85ce208faf07e2941287ed576d39cb4ed2097dc9751b",
    "1c9883fe3e5cb184a2664bba78eb8fc40dedebd8059fef7922fac7eaf3cc1a170fcb1b8f5d21edae5a300f8203ca6128",
    "586e93106b69512b91427c31140388527a5cc6391d894c34c2910a896ef60d4536218c5ab1be2189fd2359d4827f1958",
    "dba8daf68c65f140e940d7c0527be886f1f072c2412157e4496d7e131ff4aae788803001025a9d2d08c10742f407b203",
    "4e128be60102818100ff620d47325a39074a09810074dee8c53683c8e1cb86d4d919f763bca3fad4782b31c9cc9cff59",
    "f122e898792effef25ec139296b61c455583b9e97550e6bcbcb211f69e74bfe2e3da0ce1d17f3a13fee98abe76e343fa",
    "9a883785fbc9e86d51abb04cef0ac9e1c9452203ea54b5d4754c2b8e0f079047a692a9851ce286420102818100e41371",
    "0abd044a461a2ece474fd128607aa7725a4de0c1380cd6f07d2503a47b5ca52a1d997c2dd93d90de29503da53efe6cb5",
    "0a2b97843c5911939dd3f709508c586c9b0a8648777fda28bd62b4d70cfc3bf121d412961a1ea2f618bf4cc788faf7ec",
    "735d704338a84e46974211dc7e4167d7d91d2168498a6a72aa90ccde55028180366d20254f3ed92e8b81d10356e4f6b8",
    "a8f0970c4002e133cf8be0aea047e1a626967aca679f27fcf3129d041e971ed1772988b123e88c82380b940c938c4926",
    "f1d0503ddee5d225fb1f89b4cb2786816a264e8729d22003750a583c9c0033e416f200c3650a375b5ca76e2c2f977cca",
    "eecbcd7fb87df03738c47600fce9de01028181009bed22ba69b1362a291a58d26e221b8da22d3a43bcbc6cbcaa228475",
    "ba497c390e84a87f66007cc3e9905222428672a3d783705e0ca160b975574be97a11891fb5637a94a0a45f84bb36e5e5",
    "5c473042e36b0396d20b06edc2863ce37c5dbc88ccb394c6e659aacb605d6b6b5bb3246078cccac7d75f9091be7cb9fa",
    "1c56c3a502818100a57d2f109c2f74a424708aaf40fcf2d7c975bbf4934b9958e19495abbe881fafd8dd6118d24c4666",
    "bcb7468078a1f153ab021e4c494af2c92fa6d69b7bddbdaf4bad63baa89313d7ad9d5d09ba838cca955006180c8379c7",
    "18e658ac79dba9f2ae339e53cd4b31c5116f4d1370d6da2878ba2e44ecb3c1c5f334891b1fabca9d",
);
const TEST_N: &str = "44a432NhtOyQO6nY2MZp8CduI0x43B0MO3lSL5A0rY5ggN8oRRLF1ztaqTINCW1_4a-yNRQ4BEi8BCN4yJ1ggonY8KkxWhD80DLm1iA9SwG7sjb4n7Zd6LDXFPxEsxC-dtVl5uLwKZ4OroGoPg9KPFw3ysieT17b5iWVH9i4V76Ge9dP5J_FbmH4rHjzulTGQNo_n7n8kEBCAwBmlfknTJaldtb6ih5JajgTnWV4z0V_3xU2HS_OhEOQyrjUe8TnPEBU4TZS3OauAYrl6g1WpIXoQaKsplp690MBL4iquhi5WBEOUp6TsDBocfL1P0ZXJxMkl8BsHvcbHo3OzJzIVQ";
const ISSUER: &str = "https://idp.example.test";

fn der() -> Vec<u8> {
    (0..TEST_KEY_DER_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&TEST_KEY_DER_HEX[i..i + 2], 16).unwrap())
        .collect()
}

fn token(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der())).unwrap()
}

async fn jwks_server() -> String {
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": TEST_N, "e": "AQAB"}]});
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_accounts_with_the_providers_roles() {
    let jwks = jwks_server().await;
    let Some(app) = TestApp::spawn_with(mobility_store::testsuite::sqlite().await, move |s| {
        s.oidc_issuer = Some(ISSUER.into());
        s.oidc_jwks_url = Some(jwks);
        s.oidc_audience = Some("mobility".into());
    })
    .await
    else {
        return;
    };
    let exp = now_ms() / 1000 + 600;
    let claims = |sub: &str, email: &str, roles: Value| json!({"iss": ISSUER, "aud": "mobility", "sub": sub, "email": email, "roles": roles, "exp": exp});
    let get = |path: &'static str, t: String| {
        let app = &app;
        async move {
            let r = app.authed(Method::GET, path, &t).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // A staff member signs in at the provider: an account appears with the staff role.
    let staff = token(&claims("u-1", "field@example.com", json!(["staff"])), "k1");
    let (s, me) = get("/v1/me", staff.clone()).await;
    assert_eq!(
        (s, me["role"].as_str(), me["email"].as_str()),
        (200, Some("staff"), Some("field@example.com")),
        "{me}"
    );
    assert_eq!(
        get("/v1/fleet/stats?city=nowhere", staff.clone()).await.0,
        404,
        "staff may read fleet stats"
    );
    assert_eq!(
        get("/v1/admin/users", staff).await.0,
        403,
        "but not administer"
    );
    // The role follows the provider; the account stays the same.
    let (_, again) = get(
        "/v1/me",
        token(&claims("u-1", "field@example.com", json!("rider")), "k1"),
    )
    .await;
    assert_eq!(
        (again["id"].as_str(), again["role"].as_str()),
        (me["id"].as_str(), Some("rider"))
    );

    // Refused: another issuer, another audience, expired, an unknown key, a symmetric algorithm.
    let mut wrong = claims("u-2", "x@example.com", json!([]));
    wrong["iss"] = json!("https://evil.example");
    assert_eq!(get("/v1/me", token(&wrong, "k1")).await.0, 401);
    let mut wrong = claims("u-2", "x@example.com", json!([]));
    wrong["aud"] = json!("someone-else");
    assert_eq!(get("/v1/me", token(&wrong, "k1")).await.0, 401);
    let mut old = claims("u-2", "x@example.com", json!([]));
    old["exp"] = json!(now_ms() / 1000 - 3_600);
    assert_eq!(get("/v1/me", token(&old, "k1")).await.0, 401);
    assert_eq!(
        get(
            "/v1/me",
            token(&claims("u-2", "x@example.com", json!([])), "k9")
        )
        .await
        .0,
        401
    );
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let forged = jsonwebtoken::encode(
        &hs,
        &claims("u-3", "y@example.com", json!(["admin"])),
        &EncodingKey::from_secret(TEST_N.as_bytes()),
    )
    .unwrap();
    assert_eq!(get("/v1/me", forged).await.0, 401);
    // Password sign-in never works for a provider's account.
    let r = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "field@example.com", "password": "anything at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}
