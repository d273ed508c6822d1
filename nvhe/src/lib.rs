//! nvhe
