// The page's entry point.
import './inspector.ts';
