//! podnet-nft
