// piscina's task for `runtime-request`: the same work as the postern echo
// process (answer with the value asked). Plain JavaScript: piscina loads its
// task file in its own workers, which do not get the tsx loader.
export default function echo(value) {
  return value;
}
