#pragma once
// BROOK_API marks what libbrook-client exports. Everything else in the library, the codec
// and transport it carries inside included, is compiled with hidden visibility, so an
// application sees only the public API and cannot come to depend on an internal symbol.
#if defined(__GNUC__)
#define BROOK_API __attribute__((visibility("default")))
#else
#define BROOK_API
#endif
// For a class nested in an exported one that stays inside the library (a pimpl).
#if defined(__GNUC__)
#define BROOK_LOCAL __attribute__((visibility("hidden")))
#else
#define BROOK_LOCAL
#endif
