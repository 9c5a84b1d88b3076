// Package words formats the bits of English that bcctl's messages share:
// counted nouns ("1 rule", "2 rules"), sizes ("1.2MiB", read back by
// ParseBytes from flags and scripts) and "did you mean" suggestions for a
// name that is not among the known ones. Every command, the rule language
// and the schema layer use these, so that the same mistake gets the same
// hint everywhere.
package words
