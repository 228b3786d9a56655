// Projects the build-cache tests share.
#pragma once

#include <string>

#include "tests/support/build_project.h"

namespace cbuild::test {

// Two COPY+RUN pairs and an ENV: each project its own store and context, the same files
// (`b` changes the second pair's input).
inline void two_steps_each(const BuildProject& p, const std::string& b = "b\n") {
  p.file("a.txt", "a\n");
  p.file("b.txt", b);
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a.copy\nCOPY b.txt /b.txt\n"
                       "RUN cat /b.txt > /b.copy\nENV DONE=1\n");
}

}  // namespace cbuild::test
