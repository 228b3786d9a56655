// The Dockerfile syntax tree, as BuildKit's parser produces it (frontend/dockerfile/parser).
//
// A Node is one instruction: its keyword as written, its --flags, its argument strings, the
// nested instruction of ONBUILD, its heredocs and its line range. Nodes are plain values
// (copyable); nothing here touches disk. dump() gives BuildKit's debug format (the
// conformance `result` files), used by `cbuild debug ast`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "builder/dockerfile/dockerfile_error.h"

namespace cbuild::builder::dockerfile {

// Lines are counted from 1; end is the last physical line the node consumed (heredoc
// bodies and skipped blank/comment lines inside a continuation included).
struct SourceRange {
  int start_line = 0;
  int end_line = 0;
};

struct Heredoc {
  std::string name;     // the delimiter word, quotes removed
  std::string content;  // the body as written, every line with its "\n" (not yet chomped)
  bool expand = true;   // false when any part of the delimiter was quoted
  bool chomp = false;   // `<<-`: leading tabs are stripped from body lines
  unsigned fd = 0;      // `3<<EOF` gives 3 (0 when not written)
};

struct Node {
  std::string keyword;              // as written ("Copy"); compare with lower_keyword()
  std::string original;             // the joined instruction text (continuations applied)
  std::vector<std::string> flags;   // "--from=x", quotes removed, in order
  std::vector<std::string> args;    // argument nodes (see conformance README §2.7)
  std::vector<Node> sub;            // ONBUILD: the nested instruction (0 or 1 element)
  bool json = false;                // the arguments were a JSON string array
  std::vector<Heredoc> heredocs;
  SourceRange range;

  std::string lower_keyword() const;
};

struct Directives {
  char escape = '\\';
  std::string syntax;  // "# syntax=" value, empty if absent
  std::string check;   // "# check=" value, empty if absent
};

struct ParsedDockerfile {
  std::string file;  // the name used in messages
  Directives directives;
  std::vector<Node> instructions;
  SourceRange range;  // first instruction's start to last instruction's end
  std::vector<DockerfileWarning> warnings;
};

// One node in BuildKit's dump format, without parentheses: `run "echo hi"`.
std::string dump(const Node& node);
// The whole tree: one "(…)" line per instruction, each ending in "\n".
std::string dump(const ParsedDockerfile& tree);
// Go's strconv.Quote.
std::string go_quote(std::string_view s);
// Go's %q of an integer: the rune literal strconv.QuoteRune makes ('<', '\x03', '\u00a0');
// values that are no valid rune (surrogates, above U+10FFFF, negative) print as the
// replacement character U+FFFD, as in Go.
std::string go_quote_rune(std::int64_t value);

}  // namespace cbuild::builder::dockerfile
