//! Pure domain core of the CloudFreedom Agent Platform.
