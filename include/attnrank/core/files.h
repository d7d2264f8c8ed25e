// Writing a whole text file at once, checked and atomic: the file is written to
// PATH.tmp, closed (every byte reached the file system) and renamed over PATH, so
// a reader never sees half a file and a full disk is an error, not a short file.
#pragma once
#include <string>

namespace attnrank {

// Throws std::runtime_error "cannot write PATH: reason" on any failure; the
// temporary file is removed then.
void write_file_atomically(const std::string& path, const std::string& text);

// fsync of a directory, so that a rename inside it survives a crash of the machine.
// Best effort: some file systems refuse it, and nothing is lost by going on.
void sync_directory(const std::string& path);

}  // namespace attnrank
