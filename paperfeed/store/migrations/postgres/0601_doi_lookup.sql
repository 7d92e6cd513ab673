-- A DOI typed or pasted into the search box, and a library import matching its entries by DOI,
-- look papers up by their DOI in lower case (DOIs are case-insensitive): without this index
-- each look-up read the whole papers table.
CREATE INDEX papers_doi_lower ON papers (lower(doi));
