//! The names the API is reached by: endpoints, query parameters, headers and
//! environment variables.

/// The request header that carries the caller's intercept ID: the
/// workstation's API picks the intercept by it.
pub const CALLER_INTERCEPT_ID_HEADER: &str = "x-telepresence-caller-intercept-id";

/// The API's endpoints.
pub mod endpoint {
    /// `200` when the API is up.
    pub const HEALTHZ: &str = "/healthz";
    /// Whether this side should process a message: `true` or `false`.
    pub const CONSUME_HERE: &str = "/consume-here";
    /// Which intercept a message belongs to, and on which side the API is
    /// (2.5 and later).
    pub const INTERCEPT_INFO: &str = "/intercept-info";
    /// The three, in this order.
    pub const ALL: [&str; 3] = [HEALTHZ, CONSUME_HERE, INTERCEPT_INFO];
}

/// The query (or form) parameters of `/consume-here` and `/intercept-info`.
pub mod query {
    /// The path the message stands for, matched by the path filters.
    pub const PATH: &str = "path";
    /// The intercepted container port; the pod's API picks its target by it.
    pub const CONTAINER_PORT: &str = "containerPort";
}

/// Environment variables.
pub mod env {
    /// The API's port; Telepresence sets it on both sides when the API is enabled.
    pub const API_PORT: &str = "TELEPRESENCE_API_PORT";
    /// The API's host (`localhost` when unset).
    pub const API_HOST: &str = "TELEPRESENCE_API_HOST";
    /// The intercept's ID; Telepresence sets it on the workstation only.
    pub const INTERCEPT_ID: &str = "TELEPRESENCE_INTERCEPT_ID";
    /// The container port to query with. Telepresence does not set it: it
    /// belongs to this project, for workloads with several ports.
    pub const CONTAINER_PORT: &str = "TELEPRESENCE_KAFKA_CONTAINER_PORT";
    /// The mock server's configuration, as YAML or JSON.
    pub const MOCK_CONFIG: &str = "TELEPRESENCE_MOCK_CONFIG";
    /// The token the mock server's admin API requires.
    pub const MOCK_ADMIN_TOKEN: &str = "TELEPRESENCE_MOCK_ADMIN_TOKEN";

    /// The environment a consumer needs to reach an API, as Telepresence
    /// sets it on one side.
    ///
    /// ```
    /// use telepresence_api::env::ConsumerEnv;
    ///
    /// let env = ConsumerEnv::new(9980, "localhost", "abc:orders");
    /// assert_eq!(
    ///     env.to_string(),
    ///     "export TELEPRESENCE_API_PORT='9980'\n\
    ///      export TELEPRESENCE_API_HOST='localhost'\n\
    ///      export TELEPRESENCE_INTERCEPT_ID='abc:orders'\n"
    /// );
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct ConsumerEnv {
        /// [`API_PORT`].
        pub api_port: u16,
        /// [`API_HOST`].
        pub api_host: String,
        /// [`INTERCEPT_ID`]: the intercept's ID on the workstation, empty
        /// in the pod.
        pub intercept_id: String,
    }

    impl ConsumerEnv {
        /// The environment of a consumer whose API is at `api_host:api_port`;
        /// `intercept_id` is empty on the pod's side.
        pub fn new(
            api_port: u16,
            api_host: impl Into<String>,
            intercept_id: impl Into<String>,
        ) -> Self {
            Self {
                api_port,
                api_host: api_host.into(),
                intercept_id: intercept_id.into(),
            }
        }

        /// The three variables, names and values.
        pub fn vars(&self) -> [(&'static str, String); 3] {
            [
                (API_PORT, self.api_port.to_string()),
                (API_HOST, self.api_host.clone()),
                (INTERCEPT_ID, self.intercept_id.clone()),
            ]
        }
    }

    /// `export NAME='value'` lines, one per variable, for a POSIX shell.
    impl std::fmt::Display for ConsumerEnv {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            for (name, value) in self.vars() {
                writeln!(f, "export {name}='{}'", value.replace('\'', r"'\''"))?;
            }
            Ok(())
        }
    }
}
