//! Text embeddings as core sees them: a trait that an embedding model outside this crate
//! (llm-rag's sentence encoder) implements, so the server's `/v1/embeddings` can run it
//! without core depending on it.

/// The error an embedder reports; the server shows its message.
pub type EmbedError = Box<dyn std::error::Error + Send + Sync>;

/// A model that turns texts into vectors.
pub trait TextEmbedder: Send {
    /// Vector width.
    fn dim(&self) -> usize;

    /// One vector per text, in order.
    fn embed_texts(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, EmbedError>;

    /// Tokens the model reads for `texts` (the `usage` of an embeddings response).
    fn count_tokens(&self, texts: &[&str]) -> std::result::Result<usize, EmbedError>;
}
