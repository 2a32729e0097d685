//! Helpers shared by the HTTP-level tests: a plain HTTP client and answers.
#![allow(dead_code)]

use reqwest::Method;

pub mod process;

pub const CALLER: &str = "x-telepresence-caller-intercept-id";

/// What came back, in the form the assertions need.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{:?} is not JSON: {e}", self.body))
    }
}

/// A request under construction: method, URL path with raw query, headers, body.
pub struct Ask {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    form: Option<String>,
    content_type: Option<String>,
}

pub fn ask(base: &str, path_and_query: &str) -> Ask {
    Ask {
        method: Method::GET,
        url: format!("{base}{path_and_query}"),
        headers: Vec::new(),
        form: None,
        content_type: None,
    }
}

impl Ask {
    pub fn method(mut self, method: &str) -> Self {
        self.method = Method::from_bytes(method.as_bytes()).unwrap();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn caller(self, id: &str) -> Self {
        self.header(CALLER, id)
    }

    /// A URL-encoded form body (POST unless another method is set).
    pub fn form(mut self, body: &str) -> Self {
        if self.method == Method::GET {
            self.method = Method::POST;
        }
        self.form = Some(body.to_owned());
        self.content_type = Some("application/x-www-form-urlencoded".to_owned());
        self
    }

    pub fn body(mut self, content_type: &str, body: &str) -> Self {
        if self.method == Method::GET {
            self.method = Method::POST;
        }
        self.form = Some(body.to_owned());
        self.content_type = Some(content_type.to_owned());
        self
    }

    pub async fn send(self) -> Answer {
        self.try_send().await.expect("request failed")
    }

    pub async fn try_send(self) -> Result<Answer, reqwest::Error> {
        let client = reqwest::Client::builder().build().unwrap();
        let mut req = client.request(self.method, &self.url);
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        if let Some(ct) = &self.content_type {
            headers.insert(reqwest::header::CONTENT_TYPE, ct.parse().unwrap());
        }
        req = req.headers(headers);
        if let Some(body) = self.form {
            req = req.body(body);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.text().await?;
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
}

pub fn answer(status: u16, content_type: Option<&str>, body: &str) -> Answer {
    Answer {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.to_owned(),
    }
}

pub fn json_answer(body: &str) -> Answer {
    answer(200, Some("application/json"), body)
}
