// RUN: dce
// A loop that gj.gradients taped (an iteration count and a list of the loop values it
// pushes each iteration), with only the forward result returned: the backward loop goes,
// and the forward loop drops its count and its tape, and the `taped` mark with them.
// (Printed from a graph `while sum(a) < 10: a = exp(a) * 0.5 + a` and its gradient.)
func @main(%x: tensor<2xf64>) {
  %1 = constant {value = dense<0> : tensor<i64>} : () -> tensor<i64>
  %2 = list_new %x : (tensor<2xf64>) -> list<tensor<2xf64>>
  %3:3 = while %x, %1, %2 {max_iterations = none, taped = 1} : (tensor<2xf64>, tensor<i64>, list<tensor<2xf64>>) -> (tensor<2xf64>, tensor<i64>, list<tensor<2xf64>>) {
  ^bb0(%arg0: tensor<2xf64>, %arg1: tensor<i64>, %arg2: list<tensor<2xf64>>):
    %4 = reduce_sum %arg0 {axes = [0], keepdims = false} : (tensor<2xf64>) -> tensor<f64>
    %5 = constant {value = dense<10.0> : tensor<f64>} : () -> tensor<f64>
    %6 = less %4, %5 : (tensor<f64>, tensor<f64>) -> tensor<i1>
    condition %6 : (tensor<i1>)
  } do {
  ^bb0(%arg3: tensor<2xf64>, %arg4: tensor<i64>, %arg5: list<tensor<2xf64>>):
    %7 = exp %arg3 : (tensor<2xf64>) -> tensor<2xf64>
    %8 = constant {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
    %9 = mul %7, %8 : (tensor<2xf64>, tensor<f64>) -> tensor<2xf64>
    %10 = add %9, %arg3 : (tensor<2xf64>, tensor<2xf64>) -> tensor<2xf64>
    %11 = constant {value = dense<1> : tensor<i64>} : () -> tensor<i64>
    %12 = add %arg4, %11 : (tensor<i64>, tensor<i64>) -> tensor<i64>
    %13 = list_push %arg5, %arg3 : (list<tensor<2xf64>>, tensor<2xf64>) -> list<tensor<2xf64>>
    yield %10, %12, %13 : (tensor<2xf64>, tensor<i64>, list<tensor<2xf64>>)
  }
  %14 = reduce_sum %3#0 {axes = [0], keepdims = false} : (tensor<2xf64>) -> tensor<f64>
  %15 = constant {value = dense<1.0> : tensor<f64>} : () -> tensor<f64>
  %16 = broadcast_like %15, %14 : (tensor<f64>, tensor<f64>) -> tensor<f64>
  %17 = expand_dims %16 {axes = [0]} : (tensor<f64>) -> tensor<1xf64>
  %18 = broadcast_like %17, %3#0 : (tensor<1xf64>, tensor<2xf64>) -> tensor<2xf64>
  %19:2 = while %3#1, %18 {max_iterations = none, taped = none} : (tensor<i64>, tensor<2xf64>) -> (tensor<i64>, tensor<2xf64>) {
  ^bb0(%arg6: tensor<i64>, %arg7: tensor<2xf64>):
    %20 = constant {value = dense<0> : tensor<i64>} : () -> tensor<i64>
    %21 = greater %arg6, %20 : (tensor<i64>, tensor<i64>) -> tensor<i1>
    condition %21 : (tensor<i1>)
  } do {
  ^bb0(%arg8: tensor<i64>, %arg9: tensor<2xf64>):
    %22 = constant {value = dense<1> : tensor<i64>} : () -> tensor<i64>
    %23 = sub %arg8, %22 : (tensor<i64>, tensor<i64>) -> tensor<i64>
    %24 = list_get %3#2, %23 : (list<tensor<2xf64>>, tensor<i64>) -> tensor<2xf64>
    %25 = exp %24 : (tensor<2xf64>) -> tensor<2xf64>
    %26 = constant {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
    %29 = mul %arg9, %26 : (tensor<2xf64>, tensor<f64>) -> tensor<2xf64>
    %32 = mul %29, %25 : (tensor<2xf64>, tensor<2xf64>) -> tensor<2xf64>
    %33 = add %arg9, %32 : (tensor<2xf64>, tensor<2xf64>) -> tensor<2xf64>
    yield %23, %33 : (tensor<i64>, tensor<2xf64>)
  }
  return %3#0 : (tensor<2xf64>)
}
// CHECK:      func @main(%arg0: tensor<2xf64>) {
// CHECK-NEXT:   [[W:%[0-9]+]] = while %arg0 {max_iterations = none, taped = none} : (tensor<2xf64>) -> tensor<2xf64> {
// CHECK-NEXT:   ^bb0(%{{arg[0-9]+}}: tensor<2xf64>):
// CHECK:        } do {
// CHECK-NEXT:   ^bb0([[A:%arg[0-9]+]]: tensor<2xf64>):
// CHECK-NEXT:     [[E:%[0-9]+]] = exp [[A]]
// CHECK-NEXT:     [[H:%[0-9]+]] = constant {value = dense<0.5> : tensor<f64>}
// CHECK-NEXT:     [[M:%[0-9]+]] = mul [[E]], [[H]]
// CHECK-NEXT:     [[N:%[0-9]+]] = add [[M]], [[A]]
// CHECK-NEXT:     yield [[N]] : (tensor<2xf64>)
// CHECK-NEXT:   }
// CHECK-NEXT:   return [[W]]
// CHECK-NOT:  list_
