"""Media Claude can read (images, PDFs): checked and shrunk from raw bytes, knowing nothing of Slack or the SDK."""
