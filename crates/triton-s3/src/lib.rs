/*!
S3 adapter for triton (work in progress).

This crate will hold the archive store, built on `aws-sdk-s3`:

- an archive store with an S3 backend and a local-directory backend (listing
  with pagination, streaming get/put, multipart uploads);
- an archive reader implementing [`triton_core::source::RecordSource`] over an
  inclusive date range of `.tri` archives named as in
  [`triton_core::key::ArchiveKey`].
*/
#![deny(missing_docs)]
